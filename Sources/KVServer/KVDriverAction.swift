import KVStore
import Logging
import Wire

/// The time an input happens at: the monotonic clock (deadlines, timers) and the wall clock
/// (the log time stamped into proposals, which sessions expire by). The shell reads both; a
/// simulation makes them up.
public struct KVTime: Hashable, Sendable {
    public var monotonicNanos: UInt64
    public var wallClockMillis: UInt64

    public init(monotonicNanos: UInt64, wallClockMillis: UInt64) {
        self.monotonicNanos = monotonicNanos
        self.wallClockMillis = wallClockMillis
    }
}

/// What `KVDriver` asks its shell to do. The shell executes them in order and does nothing
/// else of its own accord.
public enum KVDriverAction: Equatable, Sendable {
    /// Write this response to client connection `client` (a gone client: drop it). `op`, when
    /// set, is the operation the response answers, for the request counters.
    case reply(client: UInt64, response: KvResponse, op: Op?)
    /// Write this frame to raftd's connection.
    case sendToRaft(KvdToRaft)
    /// Drop raftd's connection and dial again (raftd sent something kvd cannot follow). The
    /// driver has already done what a disconnect does; the shell reports the new connection.
    case resetRaftLink
    /// Call `passEnded` once the inputs already queued in this loop pass are in (group commit:
    /// everything that arrived together goes to raftd together).
    case schedulePassEnd
    /// Call `tick` at this time (monotonic nanoseconds). Replaces any earlier request.
    case armTimer(at: UInt64)
    /// Encode this copy of the state machine (off the loop if the shell likes) and report it
    /// back as `snapshotEncodingStarted`, `snapshotPartEncoded`… and `snapshotEncodingFinished`
    /// under `id`, handing over at most a few parts ahead of `snapshotPartSent`.
    case encodeSnapshot(id: UInt64, machine: KVStateMachine)
    /// One part of encoding `id` was cut into chunks and sent: the encoder may hand over another.
    case snapshotPartSent(id: UInt64)
    /// Encoding `id` is no longer wanted: stop it (its later reports are ignored).
    case cancelSnapshotEncoding(id: UInt64)
    /// A large state was replaced or sent: give freed memory back to the system.
    case releaseFreeMemory
    case log(Logger.Level, String)
}
