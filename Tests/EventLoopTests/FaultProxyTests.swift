import ClusterTestSupport
import EventLoop
import Testing
import Raft
import SeededRandom

/// A byte echo server on this test's loop, behind a FaultProxy running on its own thread.
private final class EchoBehindProxy {
    let loop = EventLoop()
    private var listener: Listener!
    private var accepted: [Connection] = []
    private(set) var proxy: FaultProxy!

    init() throws {
        listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { [unowned self] connection in
            self.accepted.removeAll { $0.isClosed }
            self.accepted.append(connection)
            connection.onRead = { connection in
                var bytes: [UInt8] = []
                connection.readAvailable(appendingTo: &bytes)
                connection.write(bytes)
            }
        }
        proxy = try FaultProxy(target: .tcp(host: "127.0.0.1", port: listener.port), seed: 42)
    }

    /// Connects through the proxy, sends `payload`, and reports what came back and how the
    /// connection ended (nil while it is still open) once `payload.count` bytes arrived or it closed.
    func roundTrip(_ payload: [UInt8], then done: @escaping (_ echoed: [UInt8], _ closed: Connection.CloseReason?, _ nanos: UInt64) -> Void) throws -> Connection {
        var echoed: [UInt8] = []
        var reported = false
        let start = EventLoop.monotonicNanos()
        let client = try Connection.connect(loop: loop, to: proxy.endpoint)
        client.onConnected = { $0.write(payload) }
        client.onRead = { connection in
            connection.readAvailable(appendingTo: &echoed)
            if echoed.count >= payload.count, !reported {
                reported = true
                done(echoed, nil, EventLoop.monotonicNanos() - start)
            }
        }
        client.onClose = { _, reason in
            guard !reported else { return }
            reported = true
            done(echoed, reason, EventLoop.monotonicNanos() - start)
        }
        return client
    }
}

@Suite struct FaultProxyTests {
    @Test func bytesPassThroughUnchanged() throws {
        let setup = try EchoBehindProxy()
        defer { setup.proxy.stop() }
        var payload: [UInt8] = []
        for i in 0..<(256 * 1024) { payload.append(UInt8(truncatingIfNeeded: i &* 7 &+ i >> 8)) }
        var result: [UInt8] = []
        var reason: Connection.CloseReason?
        let client = try setup.roundTrip(payload) { echoed, closed, _ in
            result = echoed
            reason = closed
            setup.loop.stop()
        }
        runLoop(setup.loop, seconds: 10, keeping: client, setup)
        #expect(reason == nil)
        #expect(result.count == payload.count)
        #expect(result == payload)
        #expect(setup.proxy.stats.accepted == 1)
    }

    @Test func partitionDropsAndRefusesUntilHealed() throws {
        let setup = try EchoBehindProxy()
        defer { setup.proxy.stop() }
        let loop = setup.loop
        var events: [String] = []
        var clients: [Connection] = []

        func afterHeal() throws {
            clients.append(try setup.roundTrip([3]) { echoed, closed, _ in
                events.append("healed: \(echoed) \(closed.map { "\($0)" } ?? "open")")
                loop.stop()
            })
        }
        func duringPartition() throws {
            clients.append(try setup.roundTrip([2]) { echoed, closed, _ in
                events.append("partitioned: \(echoed) \(closed.map { "\($0)" } ?? "open")")
                setup.proxy.heal()
                do { try afterHeal() } catch { Issue.record("\(error)"); loop.stop() }
            })
        }
        // A long-lived connection: echo once, then the partition must close it.
        let first = try Connection.connect(loop: loop, to: setup.proxy.endpoint)
        first.onConnected = { $0.write([1]) }
        first.onRead = { connection in
            var bytes: [UInt8] = []
            connection.readAvailable(appendingTo: &bytes)
            events.append("first echoed \(bytes)")
            setup.proxy.partition()
        }
        first.onClose = { _, reason in
            events.append("first closed: \(reason)")
            do { try duringPartition() } catch { Issue.record("\(error)"); loop.stop() }
        }
        runLoop(loop, keeping: first, setup)
        // A connection refused during the partition is accepted and closed at once: the client
        // sees an EOF, or a reset if its request reached the socket after the close.
        let refusal = events.count > 2 && (events[2] == "partitioned: [] closed by peer"
            || events[2] == "partitioned: [] error: Connection reset by peer")
        #expect(refusal, "\(events)")
        #expect(events.count == 4 && events[0] == "first echoed [1]" && events[1] == "first closed: closed by peer"
            && events[3] == "healed: [3] open", "\(events)")
        let stats = setup.proxy.stats
        #expect(stats.refused == 1)
        #expect(stats.killed == 1)
        #expect(stats.accepted == 2)
        clients.removeAll()
    }

    @Test func delayHoldsBytesInEachDirection() throws {
        let setup = try EchoBehindProxy()
        defer { setup.proxy.stop() }
        setup.proxy.setDelay(ms: 100)
        var elapsedMs = 0.0
        var result: [UInt8] = []
        let client = try setup.roundTrip(Array(0..<100)) { echoed, _, nanos in
            result = echoed
            elapsedMs = Double(nanos) / 1_000_000
            setup.loop.stop()
        }
        runLoop(setup.loop, keeping: client, setup)
        #expect(result == Array(0..<100))
        // 100 ms each way; the upper bound is generous for a loaded 2-core machine.
        #expect(elapsedMs >= 200, "round trip took \(elapsedMs) ms")
        #expect(elapsedMs < 2000, "round trip took \(elapsedMs) ms")
    }

    @Test func dropProbabilityOneKillsConnections() throws {
        let setup = try EchoBehindProxy()
        defer { setup.proxy.stop() }
        setup.proxy.setDropProbability(1.0)
        var outcomes: [String] = []
        var clients: [Connection] = []
        func attempt(_ remaining: Int) throws {
            clients.append(try setup.roundTrip([9, 9]) { echoed, closed, _ in
                outcomes.append("\(echoed) \(closed.map { "\($0)" } ?? "open")")
                if remaining > 1 {
                    do { try attempt(remaining - 1) } catch { Issue.record("\(error)"); setup.loop.stop() }
                } else {
                    // Links are reliable again.
                    setup.proxy.setDropProbability(0)
                    do {
                        clients.append(try setup.roundTrip([7]) { echoed, closed, _ in
                            outcomes.append("reliable: \(echoed) \(closed.map { "\($0)" } ?? "open")")
                            setup.loop.stop()
                        })
                    } catch { Issue.record("\(error)"); setup.loop.stop() }
                }
            })
        }
        try attempt(3)
        runLoop(setup.loop, keeping: setup)
        #expect(outcomes == ["[] closed by peer", "[] closed by peer", "[] closed by peer", "reliable: [7] open"])
        #expect(setup.proxy.stats.killed == 3)
        clients.removeAll()
    }

    @Test func stopEndsTheProxyAndLaterCallsAreHarmless() throws {
        let setup = try EchoBehindProxy()
        setup.proxy.stop()
        setup.proxy.partition()
        setup.proxy.stop()
        var reason: Connection.CloseReason?
        let client = try Connection.connect(loop: setup.loop, to: setup.proxy.endpoint)
        client.onClose = { _, why in
            reason = why
            setup.loop.stop()
        }
        runLoop(setup.loop, keeping: client, setup)
        if case .connectFailed = reason {} else { Issue.record("expected connectFailed, got \(String(describing: reason))") }
    }

    @Test func swizzlePlanCutsAllThenHealsInAnotherOrder() {
        for seed in UInt64(0)..<50 {
            var rng = SeededGenerator(seed: seed)
            let plan = FaultSchedule.swizzlePlan(count: 5, using: &rng)
            let cuts = plan.compactMap { if case let .cut(i) = $0 { i } else { nil } }
            let heals = plan.compactMap { if case let .heal(i) = $0 { i } else { nil } }
            #expect(!cuts.isEmpty)
            #expect(Set(cuts) == Set(heals) && cuts.count == heals.count && Set(cuts).count == cuts.count)
            #expect(plan == cuts.map(FaultSchedule.Step.cut) + heals.map(FaultSchedule.Step.heal))
            if cuts.count > 1 { #expect(cuts != heals, "seed \(seed): \(plan)") }
            var again = SeededGenerator(seed: seed)
            #expect(FaultSchedule.swizzlePlan(count: 5, using: &again) == plan)
        }
    }
}
