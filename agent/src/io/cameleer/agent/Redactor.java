package io.cameleer.agent;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Blanks what must not leave the JVM in anything the agent captured: card
 * numbers (13 to 19 digits, spaces or dashes between, that pass the Luhn
 * check), e-mail addresses, bearer tokens, the values of headers named like
 * a secret, and whatever the app's own rules (one Java regex a line) match.
 */
final class Redactor {
    static final String MASK = "***";
    private static final Pattern CARD = Pattern.compile("(?<![\\d-])\\d(?:[ -]?\\d){12,18}(?![\\d-])");
    // Starts only where a run of address characters starts, and never gives
    // them back: linear in the text, whatever it holds.
    private static final Pattern EMAIL = Pattern.compile("(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}");
    private static final Pattern BEARER = Pattern.compile("(?i)(bearer\\s+)[A-Za-z0-9._~+/=-]+");
    private static final Pattern SECRET_NAME = Pattern.compile("(?i).*(password|passwd|secret|token|authorization|api[-_]?key|credential).*");

    /** Labels and URIs come from route definitions: few, and redacted once each. */
    private static final int MAX_CACHED = 4096;

    private final boolean defaults;
    private final List<Pattern> rules = new ArrayList<>();
    private final Map<String, String> cache = new ConcurrentHashMap<>();
    /** Header names repeat from one exchange to the next: matched once each. */
    private final Map<String, Boolean> secretNames = new ConcurrentHashMap<>();

    Redactor(boolean defaults, List<String> rules) {
        this.defaults = defaults;
        for (String r : rules) {
            this.rules.add(Pattern.compile(r));
        }
    }

    /** Redacts text that repeats from one exchange to the next: node labels, endpoint URIs. */
    String fixed(String s) {
        if (s == null) {
            return null;
        }
        String r = cache.get(s);
        if (r == null) {
            r = text(s);
            if (cache.size() < MAX_CACHED) {
                cache.put(s, r);
            }
        }
        return r;
    }

    String text(String s) {
        if (s == null || s.isEmpty()) {
            return s;
        }
        // Cheap looks first: most text holds no candidate, and a matcher costs.
        if (defaults) {
            if (cardRun(s)) {
                s = CARD.matcher(s).replaceAll(m -> luhn(m.group()) ? MASK : Matcher.quoteReplacement(m.group()));
            }
            if (s.indexOf('@') >= 0) {
                s = EMAIL.matcher(s).replaceAll(MASK);
            }
            if (containsBearer(s)) {
                s = BEARER.matcher(s).replaceAll("$1" + MASK);
            }
        }
        for (Pattern p : rules) {
            s = p.matcher(s).replaceAll(MASK);
        }
        return s;
    }

    String header(String name, String value) {
        if (defaults && secretName(name)) {
            return MASK;
        }
        return text(value);
    }

    private boolean secretName(String name) {
        Boolean secret = secretNames.get(name);
        if (secret == null) {
            secret = SECRET_NAME.matcher(name).matches();
            if (secretNames.size() < MAX_CACHED) {
                secretNames.put(name, secret);
            }
        }
        return secret;
    }

    /**
     * Whether s has a run CARD could match: 13 or more digits, one space or
     * dash at most between two. Most text has none, and the pattern costs.
     */
    static boolean cardRun(String s) {
        int run = 0;
        boolean sep = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c >= '0' && c <= '9') {
                if (++run >= 13) {
                    return true;
                }
                sep = false;
            } else if ((c == ' ' || c == '-') && run > 0 && !sep) {
                sep = true;
            } else {
                run = 0;
                sep = false;
            }
        }
        return false;
    }

    /** Whether s holds "bearer" in any case: found from its b's, by String's own search. */
    static boolean containsBearer(String s) {
        return bearerFrom(s, 'b') || bearerFrom(s, 'B');
    }

    private static boolean bearerFrom(String s, char b) {
        for (int i = s.indexOf(b); i >= 0 && i + 6 <= s.length(); i = s.indexOf(b, i + 1)) {
            char e = s.charAt(i + 1);
            if ((e == 'e' || e == 'E') && s.regionMatches(true, i, "bearer", 0, 6)) {
                return true;
            }
        }
        return false;
    }

    private static boolean luhn(String s) {
        int sum = 0;
        boolean twice = false;
        for (int i = s.length() - 1; i >= 0; i--) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') {
                continue;
            }
            int d = c - '0';
            if (twice) {
                d = d * 2 > 9 ? d * 2 - 9 : d * 2;
            }
            sum += d;
            twice = !twice;
        }
        return sum % 10 == 0;
    }
}
