import CLibevent
#if canImport(Glibc)
import Glibc
#endif

/// A byte stream (TCP or Unix) on a loop, over a libevent bufferevent.
///
/// Writes are queued in libevent's output buffer and leave in as few syscalls as the
/// kernel allows. Backpressure: `isWritable` turns false once more than `highWater` bytes
/// wait to be sent, and `onWritable` fires when the queue drains below `lowWater`; a
/// producer that ignores it is cut off at `maxOutputBytes` (the connection closes), so a
/// slow reader can never grow this process's memory without bound.
public final class Connection {
    public enum CloseReason: Equatable, Sendable, CustomStringConvertible {
        case eof
        case error(String)
        case connectFailed(String)
        case outputOverflow
        case closedLocally

        public var description: String {
            switch self {
            case .eof: "closed by peer"
            case let .error(text): "error: \(text)"
            case let .connectFailed(text): "connect failed: \(text)"
            case .outputOverflow: "output buffer overflow (peer not reading)"
            case .closedLocally: "closed locally"
            }
        }
    }

    public struct Limits: Sendable {
        public var lowWater: Int
        public var highWater: Int
        public var maxOutputBytes: Int
        /// Most bytes libevent reads into the input buffer before handing them over.
        public var readChunk: Int

        public init(lowWater: Int = 256 * 1024, highWater: Int = 4 * 1024 * 1024,
                    maxOutputBytes: Int = 256 * 1024 * 1024, readChunk: Int = 4 * 1024 * 1024) {
            self.lowWater = lowWater
            self.highWater = highWater
            self.maxOutputBytes = maxOutputBytes
            self.readChunk = readChunk
        }
    }

    private var bev: OpaquePointer?
    /// Keeps the event base alive as long as the bufferevent exists.
    private let loop: EventLoop
    public let limits: Limits
    public let peer: String
    private var closingAfterFlush = false
    private var readingPaused = false
    /// Queued with the loop for a flush at the end of this pass.
    private var awaitingFlush = false
    /// libevent's write event: on while connecting and while output waits for the socket;
    /// off once a flush sent everything.
    private var writeEventEnabled = true
    public private(set) var isConnected: Bool
    public private(set) var isClosed = false

    /// Bytes arrived: call `readAvailable(appendingTo:)`.
    public var onRead: ((Connection) -> Void)?
    /// The output queue drained below `limits.lowWater`.
    public var onWritable: ((Connection) -> Void)?
    /// An outgoing connection completed.
    public var onConnected: ((Connection) -> Void)?
    /// The connection is gone (called once; not called for `close()` by the owner).
    public var onClose: ((Connection, CloseReason) -> Void)?
    /// Free for the owner (e.g. a session object or id).
    public var userID: UInt64 = 0
    /// Runs once when the connection's socket is released (closed, or the connection freed):
    /// how a listener counts the connections it has open.
    var onRelease: (() -> Void)?
    /// The budget this connection's output counts against, if any (`chargeOutput(to:)`).
    private var budget: OutputBudget?
    private var budgetCallback: OpaquePointer?
    /// Bytes of output counted in `budget` (what is queued now).
    private var chargedBytes = 0
    /// Bytes the socket has taken since the connection was charged: stays put while the peer
    /// does not read.
    public private(set) var outputDrainedBytes = 0
    /// The budget's last look at the unsent output, and in which of its rounds.
    var budgetSample: (round: UInt64, queued: Int)?

    /// The loop this connection belongs to (its process's limits and output budget live there).
    public var eventLoop: EventLoop { loop }
    /// A TLS link: `bev` is libevent's OpenSSL filter (plaintext) over `socketBev` (ciphertext).
    public let isTLS: Bool
    /// TLS: the socket bufferevent under the filter. The filter reads every record the socket
    /// delivered in one pass and writes records into this buffer in memory; this connection
    /// then writes it to the socket itself at the end of the pass, like a plain link (a
    /// socket-mode OpenSSL bufferevent read each record with two read(2)s, one record per
    /// readiness event, and wrote through an epoll write event: twice the syscalls per request).
    private var socketBev: OpaquePointer?
    /// TLS: our callback on `socketBev`'s output, which sees bytes the filter queues on its own
    /// (handshake, alerts) and bytes libevent's write event sends.
    private var socketOutputCallback: OpaquePointer?
    /// TLS: inside our own flush, when `socketBev`'s output changes are ours.
    private var flushingSocket = false
    /// TLS: a flush left more than `limits.lowWater` queued; `onWritable` is owed once it drains.
    private var owesWritable = false
    /// The peer's certificate, once a TLS handshake completed.
    public private(set) var peerCertificate: PeerCertificate?
    /// Why the TLS handshake failed, when it did (the reason also closes the connection).
    public private(set) var tlsFailure: String?
    /// TLS: output of this pass, handed to the OpenSSL bufferevent at the flush in one piece.
    /// (It encrypts and writes as soon as bytes reach its output: one record and one write(2)
    /// per frame without this.)
    private var tlsPending: OpaquePointer?
    /// TLS: a pass's output up to this size is made one chunk, so one record (TLS records
    /// carry at most 16 KiB; above this, copying costs more than the records it saves).
    static let tlsCoalesceLimit = 64 * 1024

    init(loop: EventLoop, bev: OpaquePointer, peer: String, connected: Bool, limits: Limits, tlsOver socketBev: OpaquePointer? = nil) {
        self.loop = loop
        self.bev = bev
        self.peer = peer
        self.limits = limits
        self.isConnected = connected
        self.isTLS = socketBev != nil
        self.socketBev = socketBev
        if socketBev != nil { tlsPending = evbuffer_new() }
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        bufferevent_setcb(bev, { _, ctx in
            Unmanaged<Connection>.fromOpaque(ctx!).takeUnretainedValue().handleRead()
        }, { _, ctx in
            Unmanaged<Connection>.fromOpaque(ctx!).takeUnretainedValue().handleWritable()
        }, { _, what, ctx in
            Unmanaged<Connection>.fromOpaque(ctx!).takeUnretainedValue().handleEvent(what)
        }, ctx)
        bufferevent_setwatermark(bev, Int16(EV_WRITE), limits.lowWater, 0)
        // The read bound sits where the bytes arrive. TLS: on the socket, not the filter: a
        // watermark on the filter's input re-arms the filter's reading on every add and drain,
        // and each re-arm costs two SSL_reads that find nothing (a third of all SSL_read calls
        // at W3). Pausing the filter still suspends the socket's reading (`pauseReading`).
        bufferevent_setwatermark(socketBev ?? bev, Int16(EV_READ), 0, limits.readChunk)
        // libevent otherwise reads and writes at most a few KiB per callback.
        bufferevent_set_max_single_read(bev, min(limits.readChunk, 1 << 20))
        bufferevent_set_max_single_write(bev, 1 << 20)
        bufferevent_enable(bev, Int16(EV_READ | EV_WRITE))
        if let socketBev {
            bufferevent_set_max_single_read(socketBev, min(limits.readChunk, 1 << 20))
            bufferevent_set_max_single_write(socketBev, 1 << 20)
            socketOutputCallback = evbuffer_add_cb(bufferevent_get_output(socketBev), { _, info, ctx in
                guard let info, let ctx else { return }
                Unmanaged<Connection>.fromOpaque(ctx).takeUnretainedValue().socketOutputChanged(info.pointee)
            }, ctx)
        }
        if connected { Connection.tuneSocket(bufferevent_getfd(bev)) }
    }

    /// A TLS link's bufferevents: libevent's OpenSSL filter over a socket bufferevent on `fd`
    /// (-1: not connected yet). Freeing the filter frees the socket bufferevent and closes `fd`.
    /// Takes `ssl` and `fd` in every case: on failure both are freed.
    static func makeTLSBufferevents(loop: EventLoop, fd: Int32, ssl: OpaquePointer,
                                    state: bufferevent_ssl_state) throws -> (filter: OpaquePointer, socket: OpaquePointer) {
        let options = Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)
        guard let socket = bufferevent_socket_new(loop.base, fd, options) else {
            SSL_free(ssl)
            if fd >= 0 { Glibc.close(fd) }
            throw EventLoopError("bufferevent_socket_new failed")
        }
        guard let filter = bufferevent_openssl_filter_new(loop.base, socket, ssl, state, options) else {
            // The filter frees the session when it fails.
            bufferevent_free(socket)
            throw EventLoopError("bufferevent_openssl_filter_new failed")
        }
        return (filter, socket)
    }

    /// TLS: bytes reached or left the socket's output without our flush (the handshake and
    /// alerts the filter writes; libevent's write event sending what a flush left): flush and
    /// look at the backlog at the end of this pass, never from inside libevent's callback.
    private func socketOutputChanged(_ info: evbuffer_cb_info) {
        guard !flushingSocket, !isClosed, info.n_added > 0 || info.n_deleted > 0 else { return }
        if !awaitingFlush {
            awaitingFlush = true
            loop.needsFlush(self)
        }
    }

    deinit {
        release()
    }

    /// Frees the socket and settles the accounts that depend on it; once.
    private func release() {
        if let tlsPending {
            evbuffer_free(tlsPending)
            self.tlsPending = nil
        }
        guard let bev else { return }
        if let socketBev, let socketOutputCallback {
            evbuffer_remove_cb_entry(bufferevent_get_output(socketBev), socketOutputCallback)
            self.socketOutputCallback = nil
        }
        if let budget {
            if let budgetCallback { evbuffer_remove_cb_entry(bufferevent_get_output(socketBev ?? bev), budgetCallback) }
            budget.unregister(ObjectIdentifier(self), queuedBytes: chargedBytes)
            self.budget = nil
            budgetCallback = nil
            chargedBytes = 0
        }
        bufferevent_free(bev)
        self.bev = nil
        socketBev = nil
        let released = onRelease
        onRelease = nil
        released?()
    }

    /// Counts this connection's unsent output against `budget`, which disconnects it if it
    /// stops reading while over the budget or the per-connection cap.
    public func chargeOutput(to budget: OutputBudget) {
        guard let bev, self.budget == nil else { return }
        self.budget = budget
        budget.register(self)
        // TLS: the ciphertext waiting for the socket (plaintext only passes through the filter).
        let output = bufferevent_get_output(socketBev ?? bev)
        chargedBytes = evbuffer_get_length(output)
        budget.account(added: chargedBytes, drained: 0, connectionQueued: chargedBytes)
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        budgetCallback = evbuffer_add_cb(output, { _, info, ctx in
            guard let info, let ctx else { return }
            let connection = Unmanaged<Connection>.fromOpaque(ctx).takeUnretainedValue()
            connection.outputChanged(added: info.pointee.n_added, drained: info.pointee.n_deleted)
        }, ctx)
    }

    private func outputChanged(added: Int, drained: Int) {
        guard let budget else { return }
        chargedBytes += added - drained
        outputDrainedBytes &+= drained
        budget.account(added: added, drained: drained, connectionQueued: chargedBytes)
    }

    /// Cut by the output budget: the peer stopped reading while over a limit.
    func disconnectForNotReading() {
        shutdown(reason: .outputOverflow)
    }

    /// Dials `endpoint`. A refused Unix connect throws at once; a TCP failure arrives as
    /// `onClose(.connectFailed)`. With `tls`, `onConnected` comes once the handshake is done
    /// (a refused certificate, either side's, arrives as `onClose(.connectFailed)`).
    public static func connect(loop: EventLoop, to endpoint: Endpoint, limits: Limits = Limits(), tls: TLSDial? = nil) throws -> Connection {
        let address = try SocketAddress.resolve(endpoint)
        let bev: OpaquePointer
        var socketBev: OpaquePointer?
        if let tls {
            let ssl = try tls.context.makeSession(expectedName: tls.expectedName)
            let made = try makeTLSBufferevents(loop: loop, fd: -1, ssl: ssl, state: BUFFEREVENT_SSL_CONNECTING)
            bev = made.filter
            socketBev = made.socket
            TLSHandshake.prepare(bev, milliseconds: loop.limits.tlsHandshakeTimeoutMs)
        } else {
            guard let made = bufferevent_socket_new(loop.base, -1, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
                throw EventLoopError("bufferevent_socket_new failed")
            }
            bev = made
        }
        // TLS: the socket under the filter connects; the filter starts the handshake then.
        let status = address.withSockaddr { bufferevent_socket_connect(socketBev ?? bev, $0, Int32($1)) }
        if status != 0 {
            let code = errno
            bufferevent_free(bev)
            throw EventLoopError.errno("connect to \(endpoint)", code: code)
        }
        return Connection(loop: loop, bev: bev, peer: endpoint.description, connected: false, limits: limits, tlsOver: socketBev)
    }

    /// Lower latency for small frames; keep dead TCP peers from hanging forever.
    static func tuneSocket(_ fd: Int32) {
        guard fd >= 0 else { return }
        var one: Int32 = 1
        var family = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let isTCP = withUnsafeMutableBytes(of: &family) { raw in
            getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) == 0
                && (Int32(raw.load(as: sa_family_t.self)) == AF_INET || Int32(raw.load(as: sa_family_t.self)) == AF_INET6)
        }
        if isTCP {
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Bytes waiting in the output queue.
    public var outputBufferedBytes: Int {
        guard let bev else { return 0 }
        return evbuffer_get_length(bufferevent_get_output(bev)) + (tlsPending.map { evbuffer_get_length($0) } ?? 0)
            + (socketBev.map { evbuffer_get_length(bufferevent_get_output($0)) } ?? 0)
    }

    /// Bytes received but not yet read by the owner.
    public var inputBufferedBytes: Int {
        guard let bev else { return 0 }
        return evbuffer_get_length(bufferevent_get_input(bev))
    }

    /// False while more than `limits.highWater` bytes wait to be sent.
    public var isWritable: Bool { !isClosed && outputBufferedBytes <= limits.highWater }

    /// Queues bytes for sending. Returns false if the connection is closed or was just
    /// closed for exceeding `maxOutputBytes`.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        guard let bev, !isClosed else { return false }
        guard !bytes.isEmpty else { return true }
        if outputBufferedBytes + bytes.count > limits.maxOutputBytes {
            shutdown(reason: .outputOverflow)
            return false
        }
        if let tlsPending {
            bytes.withUnsafeBytes { raw in _ = evbuffer_add(tlsPending, raw.baseAddress, raw.count) }
        } else {
            bytes.withUnsafeBytes { raw in _ = bufferevent_write(bev, raw.baseAddress, raw.count) }
        }
        if !awaitingFlush {
            awaitingFlush = true
            loop.needsFlush(self)
        }
        return true
    }

    func flushQueuedWrites() {
        awaitingFlush = false
        flushNow()
    }

    /// Writes queued output to the socket now instead of on the loop's next pass (e.g. right
    /// before a blocking fsync). Whatever the socket does not take stays queued, and
    /// libevent's write event sends it when the socket drains.
    public func flushNow() {
        if isTLS { return flushTLS() }
        guard let bev, !isClosed, isConnected else { return }
        let output = bufferevent_get_output(bev)
        let before = evbuffer_get_length(output)
        guard before > 0 else { return }
        // A socket bufferevent freezes the front of its output buffer so only its own write
        // callback drains it; that callback does exactly this unfreeze-write-freeze.
        evbuffer_unfreeze(output, 1)
        _ = evbuffer_write(output, bufferevent_getfd(bev))
        evbuffer_freeze(output, 1)
        let after = evbuffer_get_length(output)
        if after == 0 {
            // Everything left: no write event needed (that would cost two epoll_ctl and a
            // wakeup per write). Later writes are flushed at the end of their pass.
            if writeEventEnabled {
                bufferevent_disable(bev, Int16(EV_WRITE))
                writeEventEnabled = false
            }
            if closingAfterFlush { return shutdown(reason: .closedLocally) }
        } else if !writeEventEnabled {
            bufferevent_enable(bev, Int16(EV_WRITE))
            writeEventEnabled = true
        }
        // libevent calls the write callback only for bytes it wrote itself: when this write
        // is what drained the queue below the low-water mark, say so here, or a producer
        // waiting for `onWritable` would wait forever.
        if before > limits.lowWater, after <= limits.lowWater {
            handleWritable()
        }
    }

    /// TLS: this pass's output goes through the filter (records into `socketBev`'s output, in
    /// memory), then to the socket in one write; libevent's write event takes what the socket
    /// does not. Before the handshake is done, the filter holds it and libevent drives the socket.
    private func flushTLS() {
        guard let bev, let socketBev, let tlsPending, !isClosed else { return }
        flushingSocket = true
        defer { flushingSocket = false }
        // A producer stopped by `isWritable` counted this pass's writes as queued too.
        if outputBufferedBytes > limits.lowWater { owesWritable = true }
        let pending = evbuffer_get_length(tlsPending)
        if pending > 0 {
            // The filter writes one TLS record per buffer chunk; each `write` added a chunk.
            // One contiguous chunk makes this pass's replies one record (one encryption, one
            // header and tag) instead of one per reply.
            if pending <= Connection.tlsCoalesceLimit { evbuffer_pullup(tlsPending, -1) }
            bufferevent_write_buffer(bev, tlsPending)
        }
        guard isConnected else { return }
        let output = bufferevent_get_output(socketBev)
        if evbuffer_get_length(output) > 0 {
            evbuffer_unfreeze(output, 1)
            _ = evbuffer_write(output, bufferevent_getfd(socketBev))
            evbuffer_freeze(output, 1)
        }
        if evbuffer_get_length(output) == 0 {
            if writeEventEnabled {
                bufferevent_disable(socketBev, Int16(EV_WRITE))
                writeEventEnabled = false
            }
        } else if !writeEventEnabled {
            bufferevent_enable(socketBev, Int16(EV_WRITE))
            writeEventEnabled = true
        }
        let queued = outputBufferedBytes
        if closingAfterFlush {
            if queued == 0 { shutdown(reason: .closedLocally) }
            return
        }
        // The filter's own write callback only says its plaintext moved on: whether the
        // producer may go on depends on what still waits for the socket.
        if queued > limits.lowWater {
            owesWritable = true
        } else if owesWritable {
            owesWritable = false
            onWritable?(self)
        }
    }

    /// Moves every received byte to the end of `buffer`; returns how many.
    @discardableResult
    public func readAvailable(appendingTo buffer: inout [UInt8]) -> Int {
        guard let bev else { return 0 }
        let input = bufferevent_get_input(bev)
        let available = evbuffer_get_length(input)
        guard available > 0 else { return 0 }
        // Copy straight out of libevent's chunks (no zero-fill, no intermediate buffer).
        let chunks = Int(evbuffer_peek(input, -1, nil, nil, 0))
        var vectors = [iovec](repeating: iovec(), count: max(chunks, 1))
        let filled = Int(evbuffer_peek(input, -1, nil, &vectors, Int32(vectors.count)))
        // Geometric growth: reserving exactly count + available made every read of a large frame
        // copy all it held so far (16 MiB in 64 KiB reads: 2 GB moved, seconds of CPU).
        let needed = buffer.count + available
        if buffer.capacity < needed { buffer.reserveCapacity(max(needed, buffer.capacity * 2)) }
        var copied = 0
        for vector in vectors.prefix(min(filled, vectors.count)) where vector.iov_len > 0 {
            buffer.append(contentsOf: UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len))
            copied += vector.iov_len
        }
        evbuffer_drain(input, copied)
        return copied
    }

    /// Stops reading from the socket (the kernel then pushes back on the sender).
    public func pauseReading() {
        guard let bev, !readingPaused else { return }
        readingPaused = true
        bufferevent_disable(bev, Int16(EV_READ))
    }

    public func resumeReading() {
        guard let bev, readingPaused, !closingAfterFlush else { return }
        readingPaused = false
        bufferevent_enable(bev, Int16(EV_READ))
        // Bytes that arrived while paused are already buffered: hand them over now.
        if evbuffer_get_length(bufferevent_get_input(bev)) > 0 { handleRead() }
    }

    public var isReadingPaused: Bool { readingPaused }

    /// Closes now, dropping unsent output. `onClose` is not called.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        release()
    }

    /// Stops reading, sends what is queued, then closes (and calls `onClose(.closedLocally)`).
    public func closeAfterFlush() {
        guard let bev, !isClosed, !closingAfterFlush else { return }
        closingAfterFlush = true
        bufferevent_disable(bev, Int16(EV_READ))
        bufferevent_setwatermark(bev, Int16(EV_WRITE), 0, 0)
        // TLS: the flush closes once the socket took everything (see `flushTLS`).
        if isTLS { return flushNow() }
        if outputBufferedBytes == 0 { return shutdown(reason: .closedLocally) }
        if !writeEventEnabled {
            bufferevent_enable(bev, Int16(EV_WRITE))
            writeEventEnabled = true
        }
    }

    private func shutdown(reason: CloseReason) {
        guard !isClosed else { return }
        close()
        onClose?(self, reason)
        onClose = nil
        onRead = nil
        onWritable = nil
        onConnected = nil
    }

    private func handleRead() {
        guard !isClosed, !closingAfterFlush else { return }
        onRead?(self)
    }

    private func handleWritable() {
        guard !isClosed else { return }
        // TLS: writability is judged at the flush, on what waits for the socket.
        if isTLS { return }
        if closingAfterFlush {
            if outputBufferedBytes == 0 { shutdown(reason: .closedLocally) }
            return
        }
        onWritable?(self)
    }

    private func handleEvent(_ what: Int16) {
        let events = Int32(what)
        if events & BEV_EVENT_CONNECTED != 0 {
            isConnected = true
            if let bev {
                Connection.tuneSocket(bufferevent_getfd(bev))
                if isTLS {
                    TLSHandshake.finished(bev)
                    peerCertificate = bufferevent_openssl_get_ssl(bev).flatMap(TLSContext.peerCertificate(of:))
                    // From here on our flush writes the socket (what it queued so far included).
                    if !awaitingFlush {
                        awaitingFlush = true
                        loop.needsFlush(self)
                    }
                }
            }
            onConnected?(self)
            // TLS: the filter reads the records that came with the handshake's last message
            // before it reports the handshake done, when no one listened yet; the socket may
            // never be readable again for them (a client waiting for its first answer).
            if isTLS, !isClosed, inputBufferedBytes > 0 { handleRead() }
            return
        }
        if events & BEV_EVENT_EOF != 0 {
            // Deliver whatever arrived before the EOF first.
            if !closingAfterFlush, inputBufferedBytes > 0 { onRead?(self) }
            shutdown(reason: closingAfterFlush ? .closedLocally : .eof)
        } else if events & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT) != 0 {
            let code = errno
            var text = String(cString: strerror(code))
            if isTLS, let bev {
                if !isConnected, events & BEV_EVENT_TIMEOUT != 0 {
                    text = "TLS handshake not finished within \(Int(loop.limits.tlsHandshakeTimeoutMs)) ms"
                } else {
                    var codes: [UInt] = []
                    while case let error = bufferevent_get_openssl_error(bev), error != 0 { codes.append(error) }
                    if TLSContext.saysAnything(codes) {
                        text = TLSContext.failure(ssl: bufferevent_openssl_get_ssl(bev), errors: codes)
                        if !isConnected { tlsFailure = text }
                    } else if !isConnected, code == 0 {
                        text = "connection closed during the TLS handshake"
                        tlsFailure = text
                    }
                }
            }
            shutdown(reason: isConnected ? .error(text) : .connectFailed(text))
        }
    }
}
