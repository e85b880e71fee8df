import EventLoop

/// Ports for test processes: bind port 0 on 127.0.0.1, read what the kernel chose, close.
/// (The port could in theory be taken again before the process binds it; listeners use
/// SO_REUSEADDR and the window is tiny.)
public enum FreePort {
    public static func allocate(count: Int) throws -> [Int] {
        let loop = EventLoop()
        var listeners: [Listener] = []
        for _ in 0..<count {
            listeners.append(try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { $0.close() })
        }
        let ports = listeners.map(\.port)
        for listener in listeners { listener.close() }
        return ports
    }
}
