// uWebSockets.js silently falls back to a slow pure-JS copy when its native addon fails to load.
// The gateway must never run on that copy: it is neither fast nor the library we test against.
import uWS from 'uWebSockets.js';

export function assertNativeUws(): void {
  const app = (uWS as unknown as { App?: unknown }).App;
  const isNative = typeof app === 'function' && /\{\s*\[native code\]\s*\}/.test(Function.prototype.toString.call(app));
  if (!isNative || process.env.UWS_USE_FALLBACK) {
    throw new Error(
      'uWebSockets.js native addon is not loaded (pure-JS fallback in use); this platform/Node ABI is unsupported. ' +
        `node ${process.version} ${process.platform}-${process.arch} abi ${process.versions.modules}`,
    );
  }
}
