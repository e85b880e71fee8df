import Testing
@testable import KVStore
import Wire

@Suite struct CommandSemanticsTests {
    @Test func getOfMissingKeyIsNoKeyWithEmptyValue() {
        var r = Replica()
        #expect(r.run(get("k")) == CommandResult(status: .noKey, value: []))
        #expect(r.machine.count == 0)
    }

    @Test func putThenGet() {
        var r = Replica()
        #expect(r.run(put("k", "v1")) == .ok)
        #expect(r.run(get("k")) == ok("v1"))
        #expect(r.run(put("k", "v2")) == .ok)
        #expect(r.run(get("k")) == ok("v2"))
        #expect(r.machine.get(bytes("k")) == bytes("v2"))
        #expect(r.machine.count == 1)
    }

    @Test func keyHoldingEmptyValueIsPresent() {
        var r = Replica()
        #expect(r.run(put("k", "")) == .ok)
        #expect(r.run(get("k")) == CommandResult(status: .ok, value: []))
        #expect(r.machine.get(bytes("k")) == [])
        #expect(r.machine.count == 1)
        #expect(r.run(delete("k")) == .ok)
        #expect(r.run(get("k")) == .noKey)
    }

    @Test func emptyKeyIsAnOrdinaryKey() {
        var r = Replica()
        #expect(r.run(put("", "v")) == .ok)
        #expect(r.run(get("")) == ok("v"))
    }

    @Test func appendToMissingKeyCreatesIt() {
        var r = Replica()
        #expect(r.run(append("k", "abc")) == .ok)
        #expect(r.run(get("k")) == ok("abc"))
    }

    @Test func appendConcatenates() {
        var r = Replica()
        r.run([put("k", "ab"), append("k", "cd"), append("k", ""), append("k", "e")])
        #expect(r.run(get("k")) == ok("abcde"))
    }

    @Test func deleteExistingIsOKThenNoKey() {
        var r = Replica()
        r.run(put("k", "v"))
        #expect(r.run(delete("k")) == .ok)
        #expect(r.run(delete("k")) == .noKey)
        #expect(r.run(get("k")) == .noKey)
        #expect(r.machine.get(bytes("k")) == nil)
        #expect(r.machine.count == 0)
    }

    @Test func keysAndValuesAreBytesNotText() {
        var r = Replica()
        let key: [UInt8] = [0, 255, 0x80]
        let value: [UInt8] = [0xC3, 0x28, 0]  // invalid UTF-8, embedded NUL
        r.run(Command(clientID: 0, seq: 0, op: .put, key: key, value: value))
        #expect(r.run(Command(clientID: 0, seq: 0, op: .get, key: key)) == CommandResult(status: .ok, value: value))
        #expect(r.run(Command(clientID: 0, seq: 0, op: .get, key: [0, 255])) == .noKey)
    }

    @Test(arguments: [Op.status, Op(rawValue: 5), Op(rawValue: -1), Op(rawValue: Int32.max)])
    func unknownOpIsBadRequestWithoutEffect(op: Op) {
        var r = Replica()
        r.run(put("k", "v"))
        #expect(r.run(Command(clientID: 0, seq: 0, op: op, key: bytes("k"), value: bytes("x"))) == .badRequest)
        #expect(r.machine.get(bytes("k")) == bytes("v"))
        #expect(r.machine.count == 1)
    }

    @Test func unknownOpFromSessionedClientConsumesItsSeq() {
        var r = Replica()
        let bad = Command(clientID: 7, seq: 1, op: Op(rawValue: 9), key: bytes("k"), value: bytes("x"))
        #expect(r.run(bad) == .badRequest)
        #expect(r.run(bad) == .badRequest)  // the stored reply
        #expect(r.run(put("k", "v", client: 7, seq: 2)) == .ok)
        #expect(r.machine.get(bytes("k")) == bytes("v"))
    }

    @Test func resultsComeOnePerCommandInOrder() {
        var r = Replica()
        let results = r.run([get("a"), put("a", "1"), get("a"), append("a", "2"), get("a"), delete("a"), delete("a"), get("a")])
        #expect(results == [.noKey, .ok, ok("1"), .ok, ok("12"), .ok, .noKey, .noKey])
    }

    @Test func emptyBatchOnlyAdvancesIndexAndClock() {
        var r = Replica()
        #expect(r.run([], atMs: 5_000) == [])
        #expect(r.machine.appliedIndex == 1)
        #expect(r.machine.clockMs == 5_000)
    }

    @Test func appliedIndexFollowsBatchesAndNoops() {
        var m = KVStateMachine()
        #expect(m.appliedIndex == 0)
        _ = m.apply(batch: CommandBatch(timestampMs: 1, commands: [put("k", "v")]), index: 1)
        #expect(m.appliedIndex == 1)
        m.applyNoop(index: 2)
        #expect(m.appliedIndex == 2)
        #expect(m.clockMs == 1)
        // Strictly increasing is all that is required (a snapshot may skip entries).
        _ = m.apply(batch: CommandBatch(timestampMs: 2, commands: []), index: 10)
        #expect(m.appliedIndex == 10)
        #expect(m.get(bytes("k")) == bytes("v"))
    }

    @Test func applyingAnEntryTwiceIsAFatalError() async {
        await #expect(processExitsWith: .failure) {
            var m = KVStateMachine()
            _ = m.apply(batch: CommandBatch(timestampMs: 1, commands: [append("k", "v")]), index: 1)
            _ = m.apply(batch: CommandBatch(timestampMs: 1, commands: [append("k", "v")]), index: 1)
        }
    }
}
