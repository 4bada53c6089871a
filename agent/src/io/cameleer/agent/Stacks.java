package io.cameleer.agent;

/** Stack traces cut to a bound: the exception, its frames, its causes. */
final class Stacks {
    static final int MAX = 8192;

    private Stacks() {}

    static String bounded(Throwable t) {
        StringBuilder b = new StringBuilder();
        for (int depth = 0; t != null && depth < 5 && b.length() < MAX; depth++, t = t.getCause()) {
            if (depth > 0) {
                b.append("Caused by: ");
            }
            b.append(t).append('\n');
            for (StackTraceElement e : t.getStackTrace()) {
                if (b.length() >= MAX) {
                    break;
                }
                b.append("\tat ").append(e).append('\n');
            }
        }
        return b.length() > MAX ? b.substring(0, MAX) : b.toString();
    }
}
