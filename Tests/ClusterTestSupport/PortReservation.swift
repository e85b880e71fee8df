import EventLoop
import Synchronization

/// Ports for test processes. `reserve` binds port 0 on 127.0.0.1 for each and keeps the
/// sockets open, so nothing else in this process (a fault proxy binding port 0, another
/// reservation) can be given the same port; `release()` frees them just before the
/// processes that will bind them start.
///
/// A port is handed out once per test process: after `release()` the kernel could give it
/// to a reservation of a test running beside this one, while this test's processes are
/// still about to bind it (or are down for a restart and come back on it).
public final class PortReservation {
    private let loop = EventLoop()
    private var listeners: [Listener] = []
    public let ports: [Int]
    private static let handedOut = Mutex<Set<Int>>([])

    public init(count: Int) throws {
        var held: [Listener] = []
        // Ports handed out before, kept bound until this reservation has its own.
        var skipped: [Listener] = []
        defer { for listener in skipped { listener.close() } }
        while held.count < count {
            let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { $0.close() }
            let fresh = Self.handedOut.withLock { $0.insert(listener.port).inserted }
            if fresh { held.append(listener) } else { skipped.append(listener) }
            precondition(skipped.count < 10_000, "no fresh loopback port left")
        }
        listeners = held
        ports = held.map(\.port)
    }

    public func release() {
        for listener in listeners { listener.close() }
        listeners.removeAll()
    }
}
