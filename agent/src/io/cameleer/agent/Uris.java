package io.cameleer.agent;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/** Endpoint URIs without the credentials they may carry. */
final class Uris {
    /** A route's endpoint is sanitized once, not per exchange; bounded for apps that make endpoints on the fly. */
    private static final int CACHED = 1024;
    private static final Map<String, String> CACHE = new ConcurrentHashMap<>();
    private static final Pattern USERINFO = Pattern.compile("(://)[^/@?#]*@");
    private static final Pattern SECRET_PARAM = Pattern.compile(
            "(?i)([?&][^=&]*(?:password|passwd|secret|token|access[-_]?key|api[-_]?key|credential)[^=&]*=)[^&]*");

    private Uris() {}

    static String sanitize(String uri) {
        if (uri == null) {
            return null;
        }
        String clean = CACHE.get(uri);
        if (clean == null) {
            clean = SECRET_PARAM.matcher(USERINFO.matcher(uri).replaceAll("$1")).replaceAll("$1" + Redactor.MASK);
            if (CACHE.size() < CACHED) {
                CACHE.put(uri, clean);
            }
        }
        return clean;
    }
}
