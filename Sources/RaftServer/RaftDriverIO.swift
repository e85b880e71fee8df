import Raft
import Wire

/// What `RaftDriver` asks of its shell, in the order it asks: raftd's `RaftServer` does it on
/// libevent, a simulation records it. The driver makes every decision; these only move bytes.
public protocol RaftDriverIO: AnyObject {
    /// Sends to peers; `flushNow`: write them before returning (the leader's appends before its
    /// own fsync, acknowledgements right after it).
    func sendToPeers(_ messages: [Message], flushNow: Bool)
    /// Whether the kvd link has room for more (false while its output is backed up, and with no kvd).
    var kvdIsWritable: Bool { get }
    /// Writes these messages to the attached kvd, in one write.
    func sendToKvd(_ messages: [RaftToKvd])
    /// Closes the kvd link (it broke the apply protocol); no `kvdDisconnected` follows.
    func closeKvd()
    /// The configuration in force changed: dial its members, forget departed nodes' identities.
    func configurationChanged(_ configuration: Configuration)
    /// A graceful shutdown finished (handed over or timed out): stop, then exit.
    func shutdownFinished()
    /// Persisting failed: continuing could acknowledge data that is not on disk. The driver has
    /// stopped; the shell must stop the process with a failure status.
    func persistFailed(_ error: any Error)
}
