import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  // The gateway's default CORS_ORIGINS allows this origin.
  server: { host: "localhost", port: 5173, strictPort: true },
});
