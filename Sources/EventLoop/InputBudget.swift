/// The bytes held in partly received frames on all of a process's client links, held to one
/// budget. The partial-frame timeout bounds how long a frame may stay unfinished; this bounds
/// how much memory unfinished frames take meanwhile: without it, a thousand connections each
/// sending 15 MiB of a 16 MiB frame hold 15 GB for the whole timeout.
///
/// Way out: going over the budget disconnects the holders of the largest partial frames, at
/// once, until the rest fits; a link that completes its frame stops counting. No timer, no pause.
public final class InputBudget {
    public var limitBytes: Int
    /// Bytes in partial frames on all registered links now.
    public private(set) var heldBytes = 0
    /// Links cut to keep within the budget, since the process started.
    public private(set) var disconnections = 0

    private var holders: [ObjectIdentifier: Holder] = [:]
    private let log: RateLimitedLog

    private struct Holder {
        var bytes: Int
        let cut: () -> Void
    }

    public init(loop: EventLoop, limits: ProcessLimits) {
        limitBytes = limits.clientInputBudgetBytes
        log = loop.connectionLog
    }

    /// `holder` now holds `bytes` of an unfinished frame (0: none). `cut` closes that link; it
    /// is called (at most once) if the budget must shed this holder, and the link must then
    /// `release` itself.
    public func hold(_ holder: AnyObject, bytes: Int, cut: @escaping () -> Void) {
        // The common case, a link with no partial frame while no link has one: nothing to do.
        if bytes == 0 && heldBytes == 0 { return }
        let id = ObjectIdentifier(holder)
        heldBytes += bytes - (holders[id]?.bytes ?? 0)
        holders[id] = bytes > 0 ? Holder(bytes: bytes, cut: cut) : nil
        assert(heldBytes >= 0, "input budget went negative")
        shedWhileOver()
    }

    /// The link is gone or holds no partial frame any more.
    public func release(_ holder: AnyObject) {
        guard let gone = holders.removeValue(forKey: ObjectIdentifier(holder)) else { return }
        heldBytes -= gone.bytes
        assert(heldBytes >= 0, "input budget went negative")
    }

    private func shedWhileOver() {
        while heldBytes > limitBytes, let (id, largest) = holders.max(by: { $0.value.bytes < $1.value.bytes }) {
            holders[id] = nil
            heldBytes -= largest.bytes
            disconnections += 1
            log.log(.warning, key: "input budget",
                        "closing a client holding \(largest.bytes) bytes of an unfinished frame: partial frames of all clients exceed the \(limitBytes)-byte input budget")
            largest.cut()
        }
    }
}
