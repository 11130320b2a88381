/** Progress goes to stderr: stdout carries only the report, whose last line is the JSON. */
const began = Date.now()

export function say(msg: string): void {
  const s = ((Date.now() - began) / 1000).toFixed(1).padStart(6)
  process.stderr.write(`[bench ${s}s] ${msg}\n`)
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export const round = (n: number, digits = 0): number => {
  const f = 10 ** digits
  return Math.round(n * f) / f
}

/** Polls until check() is true; false when the deadline passed first. */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() >= deadline) return false
    await sleep(everyMs)
  }
}
