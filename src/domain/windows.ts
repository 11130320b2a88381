export const WINDOWS = ['1m', '5m', '1h', '1d'] as const
export type WindowName = (typeof WINDOWS)[number]

export const WINDOW_MS: Readonly<Record<WindowName, number>> = {
  '1m': 60_000,
  '5m': 300_000,
  '1h': 3_600_000,
  '1d': 86_400_000,
}

/**
 * Start of the tumbling bucket holding `ts`. Day buckets start at local midnight of the configured
 * offset; shorter windows are whole UTC multiples, which every whole-minute offset keeps aligned.
 */
export function bucketStart(ts: number, window: WindowName, dayOffsetMs: number): number {
  const width = WINDOW_MS[window]
  const shift = window === '1d' ? dayOffsetMs : 0
  return Math.floor((ts + shift) / width) * width - shift
}
