import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The console is served by the control plane at /, beside /api/v1/: no
// other host, so everything it needs is in the bundle.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 600 },
  test: { environment: "jsdom", globals: true },
});
