import EventLoop

/// Ports for test processes. `reserve` binds port 0 on 127.0.0.1 for each and keeps the
/// sockets open, so nothing else in this process (a fault proxy binding port 0, another
/// reservation) can be given the same port; `release()` frees them just before the
/// processes that will bind them start.
public final class PortReservation {
    private let loop = EventLoop()
    private var listeners: [Listener] = []
    public let ports: [Int]

    public init(count: Int) throws {
        var held: [Listener] = []
        for _ in 0..<count {
            held.append(try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { $0.close() })
        }
        listeners = held
        ports = held.map(\.port)
    }

    public func release() {
        for listener in listeners { listener.close() }
        listeners.removeAll()
    }
}
