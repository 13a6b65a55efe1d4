import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The API is on the same origin (/v1) locally (the gateway serves dist/) and in AWS (CloudFront).
// `npm run dev` proxies /v1 to a running `make run` stack (REPLYFLOW_API, default :3000).
const api = process.env.REPLYFLOW_API ?? "http://127.0.0.1:3000";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", sourcemap: false, target: "es2022", assetsDir: "assets" },
  server: { proxy: { "/v1": api, "/health": api } },
  test: { environment: "happy-dom", include: ["src/**/*.test.{ts,tsx}"] },
});
