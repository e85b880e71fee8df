import RaftStorage
import Wire

/// Checks the data-dir ids every peer message carries (see `PeerIdentities`), so that a node
/// whose data dir was wiped or replaced — which has forgotten its votes and its log — cannot
/// vote or acknowledge under its old node id.
///
/// - Outgoing messages carry our data-dir id, and the id we recorded for the recipient (0 if none).
/// - The first id seen for a peer is recorded durably before the message is acted on; every
///   later message from that peer must carry the same id. One with another id comes from a
///   replaced copy: it is dropped (no vote, pre-vote or acknowledgement of it counts) and the
///   sender is told which id we know it by.
/// - A message saying we are known by another id means our own data dir was replaced: we stop
///   serving (the shell's job) rather than risk a second vote in a term we already voted in.
///
/// A brand-new node is recorded at first sight, so a cluster's nodes may start in any order.
/// Older raftds send id 0, which is neither recorded nor checked.
final class PeerIdentityGuard {
    enum Verdict: Equatable {
        case deliver
        /// The sender is a replaced copy of the peer we recorded as `known`: drop, and tell it.
        case senderReplaced(known: UInt64)
        /// The sender knows us by `knownAs`, not by our id: our data dir was replaced.
        case weAreReplaced(knownAs: UInt64)
        /// A new peer's id could not be recorded durably: drop the message (acting on it
        /// unrecorded would let a later replaced copy of that peer go unnoticed).
        case unrecorded(String)
    }

    let ownID: UInt64
    private let peers: PeerIdentities

    init(ownID: UInt64, peers: PeerIdentities) {
        self.ownID = ownID
        self.peers = peers
    }

    func stamp(_ message: inout PeerMessage) {
        message.senderDataDirID = ownID
        message.recipientDataDirID = peers.identity(of: message.to) ?? 0
    }

    func check(_ message: PeerMessage) -> Verdict {
        if message.recipientDataDirID != 0, message.recipientDataDirID != ownID {
            return .weAreReplaced(knownAs: message.recipientDataDirID)
        }
        let sender = message.senderDataDirID
        guard sender != 0 else { return .deliver }
        guard let known = peers.identity(of: message.from) else {
            do {
                try peers.record(sender, for: message.from)
            } catch {
                return .unrecorded("\(error)")
            }
            return .deliver
        }
        return known == sender ? .deliver : .senderReplaced(known: known)
    }

    /// An id as operators see it in logs and status.
    static func describe(_ id: UInt64) -> String {
        let digits = String(id, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }
}
