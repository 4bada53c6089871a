package io.cameleer.agent;

import java.lang.instrument.ClassFileTransformer;
import java.lang.reflect.InvocationTargetException;
import java.security.ProtectionDomain;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * Watches classes being loaded for Camel's AbstractCamelContext, the base
 * of every CamelContext, and installs the bridge beside the loader that
 * loads it before any context can be constructed. It only observes: it
 * never changes a class's bytes (it answers null), so Camel runs as built.
 */
final class CamelWatcher implements ClassFileTransformer {
    static final String TRIGGER = "org/apache/camel/impl/engine/AbstractCamelContext";
    private final Map<ClassLoader, Boolean> seen = Collections.synchronizedMap(new WeakHashMap<>());

    @Override
    public byte[] transform(ClassLoader loader, String className, Class<?> redefined, ProtectionDomain pd, byte[] bytes) {
        if (loader != null && redefined == null && TRIGGER.equals(className) && Recorder.on()
                && seen.put(loader, Boolean.TRUE) == null) {
            try {
                Class<?> install = Class.forName(BridgeLoader.BRIDGE + "Install", true, new BridgeLoader(loader));
                install.getMethod("install").invoke(null);
            } catch (InvocationTargetException e) {
                Recorder.fail(e.getCause());
            } catch (Throwable t) {
                Recorder.fail(t);
            }
        }
        return null;
    }
}
