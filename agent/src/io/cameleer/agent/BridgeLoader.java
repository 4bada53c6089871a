package io.cameleer.agent;

import java.io.IOException;
import java.io.InputStream;

/**
 * Loads the Camel bridge (the classes compiled against Camel's API) beside
 * one Camel: its parent is the loader that loaded Camel, so the bridge sees
 * that Camel and no other, and the agent's core comes from the agent's own
 * loader. The bridge's classes are stored in the agent jar as .bin
 * resources, so no other loader on the way up can define them first.
 */
final class BridgeLoader extends ClassLoader {
    static final String BRIDGE = "io.cameleer.agent.camel.";
    private static final String CORE = "io.cameleer.agent.";

    static {
        registerAsParallelCapable();
    }

    BridgeLoader(ClassLoader camel) {
        super("cameleer-bridge", camel);
    }

    @Override
    protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
        synchronized (getClassLoadingLock(name)) {
            Class<?> c = findLoadedClass(name);
            if (c == null) {
                if (name.startsWith(BRIDGE)) {
                    c = define(name);
                } else if (name.startsWith(CORE)) {
                    c = BridgeLoader.class.getClassLoader().loadClass(name);
                } else {
                    return super.loadClass(name, resolve);
                }
            }
            if (resolve) {
                resolveClass(c);
            }
            return c;
        }
    }

    private Class<?> define(String name) throws ClassNotFoundException {
        String path = "cameleer-bridge/" + name.replace('.', '/') + ".bin";
        try (InputStream in = BridgeLoader.class.getClassLoader().getResourceAsStream(path)) {
            if (in == null) {
                throw new ClassNotFoundException(name);
            }
            byte[] b = in.readAllBytes();
            return defineClass(name, b, 0, b.length);
        } catch (IOException e) {
            throw new ClassNotFoundException(name, e);
        }
    }
}
