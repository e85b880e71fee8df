import Raft
import RaftServer
import SimulationSupport
import Testing
import Wire

/// The driver's decisions, one scripted situation each, on simulated disks and links.
struct RaftDriverTests {
    @Test func leaderSendsItsAppendsBeforeItsSync() {
        let cluster = DriverTestCluster(count: 3)
        let leader = cluster.electLeader()
        cluster.advance(ms: 50)
        leader.recording = true
        cluster.propose(at: leader.id, count: 1)
        leader.driver!.processReady(now: cluster.now)
        let journal = leader.journal
        let send = journal.firstIndex { $0.hasPrefix("send") && $0.contains("append") }
        let append = journal.firstIndex { $0.hasPrefix("append") }
        let sync = journal.firstIndex { $0 == "sync" }
        #expect(send != nil && append != nil && sync != nil, "\(journal)")
        if let send, let sync, let append { #expect(send < append && append < sync, "\(journal)") }
    }

    @Test func followerAcknowledgesOnlyAfterItsSync() {
        let cluster = DriverTestCluster(count: 3)
        let leader = cluster.electLeader()
        cluster.advance(ms: 50)
        let follower = cluster.nodes.first { $0.id != leader.id }!
        follower.recording = true
        cluster.propose(at: leader.id, count: 1)
        cluster.settle()
        let journal = follower.journal
        let sync = journal.firstIndex { $0 == "sync" }
        let ack = journal.firstIndex { $0.hasPrefix("send") && $0.contains("appendResponse") }
        #expect(sync != nil && ack != nil, "\(journal)")
        if let sync, let ack { #expect(sync < ack, "\(journal)") }
    }

    @Test func votesLeaveOnlyAfterTheVoteIsSynced() {
        let cluster = DriverTestCluster(count: 3)
        for node in cluster.nodes { node.recording = true }
        _ = cluster.electLeader()
        for node in cluster.nodes {
            let journal = node.journal
            guard let vote = journal.firstIndex(where: { $0.hasPrefix("send") && $0.contains("voteResponse") }) else { continue }
            let syncedVote = journal[..<vote].lastIndex { $0.hasPrefix("hardState") }.map { position in
                journal[position..<vote].contains("sync")
            }
            #expect(syncedVote == true, "node \(node.id): \(journal)")
        }
    }

    @Test func aNewTermIsWrittenBeforeTheEntriesOfThatTerm() {
        let cluster = DriverTestCluster(count: 3)
        let follower = cluster.node(2)
        follower.recording = true
        // The follower hears of term 5 from an append carrying entries of term 5: one Ready with
        // both. A torn write must not keep the entries without the term, so the term goes first.
        let append = Message(type: .append, from: 1, to: 2, term: 5, logTerm: 0, index: 0, commit: 1,
                             entries: [Entry(term: 5, index: 1, kind: .noop)])
        follower.driver!.receive(append, now: cluster.now)
        follower.driver!.processReady(now: cluster.now)
        let journal = follower.journal
        let term = journal.firstIndex { $0.hasPrefix("hardState term=5") }
        let entries = journal.firstIndex { $0.hasPrefix("append 1...1") }
        #expect(term != nil && entries != nil, "\(journal)")
        if let term, let entries { #expect(term < entries, "\(journal)") }
        #expect(journal.last { $0.hasPrefix("hardState") } == "hardState term=5 vote=0 commit=1", "\(journal)")
        #expect(journal.contains("sync"))
    }

    @Test func aNewCommitIndexAloneIsNotSynced() {
        let cluster = DriverTestCluster(count: 3)
        let leader = cluster.electLeader()
        cluster.advance(ms: 50)
        let follower = cluster.nodes.first { $0.id != leader.id }!
        cluster.propose(at: leader.id, count: 1)
        cluster.settle()
        // The follower has the entry; the next heartbeat tells it the new commit index.
        follower.recording = true
        let syncsBefore = follower.disk.syncCount
        cluster.advance(ms: 40)
        #expect(follower.journal.contains { $0.hasPrefix("hardState") }, "\(follower.journal)")
        #expect(!follower.journal.contains("sync"), "\(follower.journal)")
        #expect(follower.disk.syncCount == syncsBefore)
    }

    @Test func streamingToKvdPausesWhileTheLinkIsFullAndResumes() {
        let cluster = DriverTestCluster(count: 3) { $0.applyChunkBytes = 1 }
        let leader = cluster.electLeader()
        cluster.advance(ms: 50)
        leader.kvdQueueLimit = 3
        let appliedBefore = leader.kvd.lastApplied
        cluster.propose(at: leader.id, count: 20)
        cluster.settle()
        cluster.settle()
        // One entry per frame (applyChunkBytes 1): the stream stops at the link's limit.
        #expect(leader.toKvd.count <= leader.kvdQueueLimit + 1, "\(leader.toKvd.count) frames queued")
        #expect(leader.kvd.lastApplied == appliedBefore)
        cluster.advance(ms: 30, kvdReads: 1)
        #expect(leader.kvd.lastApplied == leader.driver!.committedIndex, "applied \(leader.kvd.lastApplied) of \(leader.driver!.committedIndex)")
        #expect(leader.kvd.lastApplied >= appliedBefore + 20)
    }

    @Test func followersStreamAfterTheCoalescingDelay() {
        let cluster = DriverTestCluster(count: 3) { $0.followerApplyDelay = .milliseconds(5) }
        let leader = cluster.electLeader()
        cluster.advance(ms: 50)
        let follower = cluster.nodes.first { $0.id != leader.id }!
        cluster.propose(at: leader.id, count: 1)
        cluster.advance(ms: 25)  // a heartbeat carries the commit index
        #expect(follower.kvd.lastApplied == follower.driver!.committedIndex)
        #expect(follower.kvd.lastApplied == leader.kvd.lastApplied)
    }

    @Test func asksKvdForASnapshotPastTheThresholdOnceUntilTheRetry() {
        let cluster = DriverTestCluster(count: 3) {
            $0.snapshotLogBytes = 400
            $0.snapshotRequestRetry = .milliseconds(300)
        }
        let leader = cluster.electLeader()
        cluster.advance(ms: 20)
        leader.recording = true
        var requests = 0
        // Hold kvd's answers back: count the requests raftd sends.
        let driver = leader.driver!
        cluster.propose(at: leader.id, count: 30)
        cluster.settle()
        #expect(driver.logBytesSinceSnapshot >= 400)
        for _ in 0..<200 {
            cluster.now += 1_000_000
            driver.processReady(now: cluster.now)
            requests += leader.toKvd.filter { if case .snapshotRequest = $0 { true } else { false } }.count
            leader.clearKvdQueue()
        }
        #expect(requests == 1, "asked \(requests) times in 200 ms")
        for _ in 0..<200 {
            cluster.now += 1_000_000
            driver.processReady(now: cluster.now)
            requests += leader.toKvd.filter { if case .snapshotRequest = $0 { true } else { false } }.count
            leader.clearKvdQueue()
        }
        #expect(requests == 2, "asked \(requests) times in 400 ms with a 300 ms retry")
    }

    @Test func compactsAfterKvdsSnapshotKeepingTheCatchUpTail() {
        let cluster = DriverTestCluster(count: 3) {
            $0.snapshotLogBytes = 400
            $0.snapshotCatchUpBytes = 100
        }
        let leader = cluster.electLeader()
        cluster.advance(ms: 20)
        cluster.propose(at: leader.id, count: 30)
        cluster.advance(ms: 50)
        let driver = leader.driver!
        let snapshot = try! #require(driver.node.snapshot)
        #expect(snapshot.index > 0)
        #expect(leader.disk.durable.offset == snapshot.index, "the disk dropped what the snapshot covers")
        let retained = snapshot.index + 1 - driver.node.firstIndex
        let entryBytes = (driver.node.firstIndex...snapshot.index).compactMap { driver.node.entry(at: $0)?.byteSize }.reduce(0, +)
        #expect(retained > 0 && entryBytes <= 100, "kept \(retained) entries (\(entryBytes) bytes) before \(snapshot.index)")
        #expect(driver.logBytesSinceSnapshot < 400)
    }

    @Test func compactionKeepsWhatALiveFollowerStillNeeds() {
        let cluster = DriverTestCluster(count: 3) {
            $0.snapshotLogBytes = 400
            $0.snapshotCatchUpBytes = 0
        }
        let leader = cluster.electLeader()
        cluster.advance(ms: 20)
        let slow = cluster.nodes.first { $0.id != leader.id }!
        let slowMatch = slow.driver!.status.lastIndex
        // The slow follower hears heartbeats (so it is live) but no appends: it falls behind.
        cluster.dropFilter = { $0.to == slow.id && $0.type == .append }
        cluster.propose(at: leader.id, count: 30)
        cluster.advance(ms: 50)
        let driver = leader.driver!
        let snapshot = try! #require(driver.node.snapshot)
        #expect(snapshot.index > slowMatch)
        #expect(driver.node.firstIndex <= slowMatch + 1, "compacted to \(driver.node.firstIndex), the slow follower has \(slowMatch)")
        // With the appends flowing again it catches up without a snapshot.
        cluster.dropFilter = nil
        cluster.advance(ms: 50)
        #expect(slow.disk.installs == 0)
        #expect(slow.kvd.lastApplied == leader.kvd.lastApplied)
    }

    @Test func aRefusedSnapshotIsResentOnlyAfterABackoff() {
        let cluster = DriverTestCluster(count: 3) {
            $0.snapshotLogBytes = 400
            $0.snapshotCatchUpBytes = 0
        }
        let leader = cluster.electLeader()
        cluster.advance(ms: 20)
        cluster.propose(at: leader.id, count: 30)
        cluster.advance(ms: 50)
        let driver = leader.driver!
        let snapshot = try! #require(driver.node.snapshot)
        // A fresh kvd (applied nothing) is behind the compacted log: it gets the snapshot first.
        leader.disconnectKvd()
        leader.kvd.crash()
        leader.connectKvd(now: cluster.now)
        driver.processReady(now: cluster.now)
        #expect(leader.toKvd.contains { if case .snapshot = $0 { true } else { false } })
        leader.clearKvdQueue()
        driver.kvdReceived(.snapshotRejected(index: snapshot.index, reason: "test", lastApplied: 0), now: cluster.now)
        driver.processReady(now: cluster.now)
        #expect(driver.nextDeadline <= cluster.now + 1_000_000_000)
        // Nothing is resent before a second has passed.
        for _ in 0..<990 {
            cluster.now += 1_000_000
            if driver.nextDeadline <= cluster.now { driver.wake(now: cluster.now) }
            driver.processReady(now: cluster.now)
            #expect(!leader.toKvd.contains { if case .snapshot = $0 { true } else { false } })
            leader.clearKvdQueue(keepingLeadership: true)
        }
        for _ in 0..<20 {
            cluster.now += 1_000_000
            if driver.nextDeadline <= cluster.now { driver.wake(now: cluster.now) }
            driver.processReady(now: cluster.now)
        }
        #expect(leader.toKvd.contains { if case .snapshot = $0 { true } else { false } }, "resent after the 1 s back-off")
        // Refused again: now held back for 2 s.
        leader.clearKvdQueue()
        driver.kvdReceived(.snapshotRejected(index: snapshot.index, reason: "test", lastApplied: 0), now: cluster.now)
        driver.processReady(now: cluster.now)
        var resentAfter: UInt64?
        for step in 1...2_100 {
            cluster.now += 1_000_000
            if driver.nextDeadline <= cluster.now { driver.wake(now: cluster.now) }
            driver.processReady(now: cluster.now)
            if resentAfter == nil, leader.toKvd.contains(where: { if case .snapshot = $0 { true } else { false } }) { resentAfter = UInt64(step) }
            leader.clearKvdQueue()
        }
        #expect(resentAfter.map { $0 >= 2_000 } == true, "resent after \(resentAfter.map { "\($0) ms" } ?? "never") instead of 2 s")
    }

    @Test func aReconnectingKvdIsStreamedFromItsLastApplied() {
        let cluster = DriverTestCluster(count: 3)
        let leader = cluster.electLeader()
        cluster.advance(ms: 20)
        cluster.propose(at: leader.id, count: 5)
        cluster.advance(ms: 20)
        let applied = leader.kvd.lastApplied
        leader.disconnectKvd()
        cluster.propose(at: leader.id, count: 0)
        #expect(leader.driver!.status.role == .leader)
        leader.connectKvd(now: cluster.now)
        leader.driver!.processReady(now: cluster.now)
        let first = leader.toKvd.compactMap { if case let .committed(entries) = $0 { entries.first?.index } else { nil } }.first
        #expect(first == nil || first == applied + 1)
        cluster.advance(ms: 20)
        #expect(leader.kvd.lastApplied == leader.driver!.committedIndex)
        #expect(leader.kvd.violations.isEmpty, "\(leader.kvd.violations)")
    }

    @Test func shutdownHandsLeadershipOver() {
        let cluster = DriverTestCluster(count: 3)
        let leader = cluster.electLeader()
        cluster.advance(ms: 50)
        #expect(leader.driver!.beginShutdown(handover: .milliseconds(500), now: cluster.now))
        cluster.advance(ms: 50)
        #expect(leader.shutdownFinishedCount == 1)
        #expect(leader.driver!.status.role != .leader)
        #expect(cluster.nodes.contains { $0.driver?.status.role == .leader && $0.id != leader.id })
    }

    @Test func shutdownGivesUpOnTheHandoverAtItsDeadline() {
        let cluster = DriverTestCluster(count: 3)
        let leader = cluster.electLeader()
        cluster.advance(ms: 50)
        cluster.isolate(leader.id)
        // Shorter than the election timeout, after which check quorum would depose it anyway.
        #expect(leader.driver!.beginShutdown(handover: .milliseconds(30), now: cluster.now))
        cluster.advance(ms: 29)
        #expect(leader.shutdownFinishedCount == 0)
        #expect(leader.driver!.status.role == .leader)
        cluster.advance(ms: 2)
        #expect(leader.shutdownFinishedCount == 1)
        #expect(leader.driver!.status.role == .leader, "gave up at the deadline, not because it lost leadership")
    }

    @Test func aFollowerHasNothingToHandOver() {
        let cluster = DriverTestCluster(count: 3)
        let leader = cluster.electLeader()
        let follower = cluster.nodes.first { $0.id != leader.id }!
        #expect(!follower.driver!.beginShutdown(handover: .milliseconds(100), now: cluster.now))
    }

    @Test func aFailedWriteStopsTheDriverBeforeItAcknowledges() {
        let cluster = DriverTestCluster(count: 3)
        let leader = cluster.electLeader()
        cluster.advance(ms: 50)
        let follower = cluster.nodes.first { $0.id != leader.id }!
        follower.recording = true
        follower.disk.failNextWrite = "disk full"
        cluster.propose(at: leader.id, count: 1)
        cluster.settle()
        #expect(follower.persistFailure != nil)
        #expect(follower.driver!.stopped)
        #expect(!follower.journal.contains { $0.contains("appendResponse") }, "\(follower.journal)")
    }
}
