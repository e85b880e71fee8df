import Dispatch
import EventLoop
import Testing

@Suite struct LoopMailboxTests {
    /// Four threads post 2,000 values each; all arrive on the loop's thread, each thread's in
    /// the order it posted them.
    @Test func valuesFromOtherThreadsArriveInOrderOnTheLoop() {
        let loop = EventLoop()
        struct Posted: Sendable { let thread: Int; let sequence: Int }
        var received: [[Int]] = Array(repeating: [], count: 4)
        var total = 0
        let mailbox = LoopMailbox<Posted>(loop: loop) { posted in
            received[posted.thread].append(posted.sequence)
            total += 1
            if total == 8_000 { loop.stop() }
        }
        for thread in 0..<4 {
            DispatchQueue.global().async {
                for sequence in 0..<2_000 { mailbox.post(Posted(thread: thread, sequence: sequence)) }
            }
        }
        let deadline = Timer(loop: loop) { loop.stop() }
        deadline.schedule(milliseconds: 10_000)
        loop.run()
        #expect(total == 8_000)
        for thread in 0..<4 { #expect(received[thread] == Array(0..<2_000), "thread \(thread)'s values out of order") }
        withExtendedLifetime((mailbox, deadline)) {}
    }
}
