import EventLoop
import Testing

@Suite struct OutputBudgetTests {
    /// Two clients each get an 8 MiB burst, far over the 256 KiB cap per connection: the one
    /// that reads gets every byte and keeps its connection; the one that does not read is
    /// disconnected once its output has not shrunk for a stall period. The budget's count is
    /// exact: nothing is left charged afterwards.
    @Test func nonReaderIsCutReaderWithABurstIsNot() throws {
        let loop = EventLoop()
        var limits = ProcessLimits()
        limits.maxOutputBytesPerClient = 256 << 10
        limits.clientOutputBudgetBytes = 1 << 20
        limits.outputStallMs = 100
        loop.limits = limits
        let burst = [UInt8](repeating: 0x42, count: 8 << 20)
        var served: [Connection] = []
        var serverCloses: [Connection.CloseReason] = []
        let budget = loop.clientOutput
        let listener = try Listener(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: 0)) { connection in
            connection.chargeOutput(to: budget)
            connection.onClose = { _, reason in serverCloses.append(reason) }
            served.append(connection)
            connection.write(burst)
        }
        var readerBytes = 0
        var nonReaderClosed = false
        let reader = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port))
        reader.onRead = { connection in
            var sink: [UInt8] = []
            readerBytes += connection.readAvailable(appendingTo: &sink)
        }
        let nonReader = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: listener.port))
        nonReader.onConnected = { $0.pauseReading() }
        nonReader.onClose = { _, _ in nonReaderClosed = true }
        // Done once the non-reader was cut and the reader has everything.
        let poll = Timer(loop: loop, repeating: true) {
            if serverCloses.count == 1 && readerBytes == burst.count { loop.stop() }
        }
        poll.schedule(milliseconds: 10)
        runLoop(loop, seconds: 10, keeping: listener, reader, nonReader, poll)
        #expect(serverCloses == [.outputOverflow])
        #expect(readerBytes == burst.count)
        #expect(!reader.isClosed)
        #expect(budget.disconnections == 1)
        #expect(budget.bufferedBytes == 0)
        #expect(budget.chargedConnections == 1)
        _ = nonReaderClosed
    }
}
