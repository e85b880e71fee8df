import Wire

/// What the driver knows of the one kvd attached through the apply socket.
///
/// kvd opens with `hello(lastApplied)`; from then on raftd streams every committed entry
/// after that index, in order, as fast as kvd reads (the stream pauses while the link is
/// backed up and resumes when it drains, so a slow kvd costs raftd bounded memory). A kvd
/// behind the compacted log gets the snapshot first, in chunks paced the same way.
struct KvdLink {
    /// nil until kvd said hello.
    var streamedIndex: UInt64?
    /// Restoring kvd from our snapshot (it is behind the compacted log): the chunks still to send.
    var snapshotOut: (any SnapshotChunkSource)?
    /// When we last asked kvd for a snapshot (ns), while that request is unanswered.
    var snapshotRequestedAt: UInt64?
    /// kvd's last snapshot was ahead of what we know to be applied (we restarted and have not
    /// relearned the commit index yet); the next request waits until we have applied this far.
    var snapshotWaitsForApplied: UInt64 = 0
    /// Reads this kvd asked for, by the id the core knows them under (raftd-wide, so a read
    /// of an earlier kvd connection is never answered under a new connection's id).
    var readIDs: [UInt64: UInt64] = [:]
    /// Where accepted proposals landed, not yet told. kvd needs them only to match the
    /// committed entries that follow, so they ride along with the next message instead of
    /// waking kvd on their own: one wakeup fewer per proposal, and the appends to the
    /// followers are not queued behind it.
    var acceptedResults: [ProposeResult] = []

    /// `message`, preceded by the results waiting to ride along.
    mutating func frames(with message: RaftToKvd) -> [RaftToKvd] {
        guard !acceptedResults.isEmpty else { return [message] }
        let results = acceptedResults
        acceptedResults.removeAll(keepingCapacity: true)
        return [.results(results), message]
    }
}
