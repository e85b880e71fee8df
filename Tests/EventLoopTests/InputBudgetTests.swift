import EventLoop
import Testing

@Suite struct InputBudgetTests {
    private final class Holder {}

    @Test func overTheBudgetTheLargestHoldersAreCutUntilTheRestFits() {
        let loop = EventLoop()
        var limits = ProcessLimits()
        limits.clientInputBudgetBytes = 16 << 20
        let budget = InputBudget(loop: loop, limits: limits)
        let a = Holder(), b = Holder(), c = Holder()
        var cut: [String] = []
        budget.hold(a, bytes: 6 << 20) { cut.append("a") }
        budget.hold(b, bytes: 7 << 20) { cut.append("b") }
        #expect(cut.isEmpty && budget.heldBytes == 13 << 20)
        // c grows; the budget is exceeded while b holds the most, then c does.
        budget.hold(c, bytes: 2 << 20) { cut.append("c") }
        #expect(cut.isEmpty)
        budget.hold(c, bytes: 5 << 20) { cut.append("c") }
        #expect(cut == ["b"] && budget.heldBytes == 11 << 20 && budget.disconnections == 1)
        budget.hold(c, bytes: 11 << 20) { cut.append("c") }
        #expect(cut == ["b", "c"] && budget.heldBytes == 6 << 20)
        // A finished frame stops counting; releasing twice is harmless.
        budget.hold(a, bytes: 0) { cut.append("a") }
        budget.release(a)
        budget.release(b)
        #expect(budget.heldBytes == 0 && budget.disconnections == 2)
    }

    @Test func aBudgetSmallerThanOneClientFrameIsRefused() {
        var limits = ProcessLimits()
        limits.clientInputBudgetBytes = 1 << 20
        #expect(limits.problem?.contains("input budget") == true)
    }
}
