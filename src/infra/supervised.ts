/**
 * A process started by `npm start` has an IPC channel to it; when the supervisor dies (even by
 * SIGKILL) the channel closes and this process stops gracefully instead of living on orphaned and
 * holding its port. Processes started any other way are unaffected.
 */
export function stopWithSupervisor(): void {
  if (!process.send) return
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'))
}
