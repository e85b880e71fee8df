import Testing
import Wire

@Suite struct LimitsTests {
    @Test func theStandardLimitsFitTogether() {
        #expect(Limits.standard.problems == [])
        #expect(Framing.defaultFrameLimit == Limits.standard.clientFrameBytes)
    }

    @Test func aValueLimitAboveWhatAKeyMayHoldIsRefused() {
        var limits = Limits.standard
        limits.maxValueBytes = Limits.maxStoredValueBytes + 1
        #expect(limits.problems.contains { $0.contains("one key may hold") })
        limits.maxValueBytes = Limits.maxStoredValueBytes
        #expect(limits.problems == [])
    }

    @Test func framesTooSmallForTheLargestMessagesAreRefused() {
        var limits = Limits.standard
        limits.clientFrameBytes = Limits.maxStoredValueBytes
        #expect(limits.problems.contains { $0.contains("largest Get reply") })

        limits = Limits.standard
        limits.maxAppendBytes = 62 << 20
        #expect(limits.problems.contains { $0.contains("largest append") })

        limits = Limits.standard
        limits.maxKeyBytes = 0
        #expect(limits.problems.contains { $0.contains("key limit must be at least 1") })
    }

    @Test func oneCommandLargerThanABatchIsAnEntryOfItsOwn() {
        var limits = Limits.standard
        limits.maxValueBytes = 8 << 20
        #expect(limits.maxEntryBytes == limits.maxKeyBytes + (8 << 20) + Limits.messageOverheadBytes)
        limits.maxValueBytes = 100
        #expect(limits.maxEntryBytes == limits.maxProposalBytes)
    }
}
