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
///
/// Followers need not have heard from every peer themselves: a leader hears from all its
/// followers, and its heartbeats carry the ids it recorded, which followers record in turn. So a
/// wiped node that next hears from a candidate rather than the leader is still recognized, once
/// the cluster has had a leader since the node first joined. Before that (a new cluster whose
/// node is wiped before any leader heard from it) the hole remains: a peer that never learned
/// the old id takes the new one as the first.
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
    let nodeID: UInt64
    private let peers: PeerIdentities
    /// Problems met while learning a leader's record, to be logged by the caller.
    private(set) var notices: [String] = []
    /// Peers whose id in a leader's record disagreed with ours (noticed once each).
    private var conflictsNoticed: Set<UInt64> = []

    init(ownID: UInt64, nodeID: UInt64, peers: PeerIdentities) {
        self.ownID = ownID
        self.nodeID = nodeID
        self.peers = peers
    }

    func stamp(_ message: inout PeerMessage) {
        message.senderDataDirID = ownID
        message.recipientDataDirID = peers.identity(of: message.to) ?? 0
        if message.type == .heartbeat {
            message.knownDataDirs = peers.known.filter { $0.key != message.to }
        }
    }

    /// Takes the notices gathered since the last call.
    func takeNotices() -> [String] {
        defer { notices.removeAll() }
        return notices
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
            learn(message.knownDataDirs, from: message.from)
            return .deliver
        }
        guard known == sender else { return .senderReplaced(known: known) }
        learn(message.knownDataDirs, from: message.from)
        return .deliver
    }

    /// Records the ids in a (checked) leader's record that we have none for yet. One that
    /// differs from ours means one of the two is a replaced copy, but not which: noted, not acted on.
    private func learn(_ record: [UInt64: UInt64], from sender: UInt64) {
        let others = record.filter { $0.key != nodeID && $0.key != sender && $0.value != 0 }
        guard !others.isEmpty else { return }
        for (peer, id) in others {
            if let mine = peers.identity(of: peer), mine != id, conflictsNoticed.insert(peer).inserted {
                notices.append("node \(sender) knows node \(peer) as data dir \(Self.describe(id)), this node as \(Self.describe(mine)): one of them is a wiped or replaced copy of node \(peer)")
            }
        }
        let unknown = others.filter { peers.identity(of: $0.key) == nil }
        guard !unknown.isEmpty else { return }
        do {
            try peers.record(unknown)
        } catch {
            notices.append("cannot record the data-dir ids node \(sender) knows: \(error)")
        }
    }

    /// An id as operators see it in logs and status.
    static func describe(_ id: UInt64) -> String {
        let digits = String(id, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }
}
