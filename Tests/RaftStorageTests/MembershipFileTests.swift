import Foundation
import Raft
import Testing
@testable import RaftStorage

/// The membership file follows the log: configuration entries recorded when written, dropped
/// with a replaced suffix, folded on compaction, replaced by an installed snapshot's; durable.
@Suite struct MembershipFileTests {
    func config(_ voters: [UInt64], learners: [UInt64] = []) -> Configuration {
        Configuration(members: voters.map { Member(id: $0, role: .voter, raftAddress: "h\($0):7000") }
                      + learners.map { Member(id: $0, role: .learner, autoPromote: true) })
    }

    func entry(_ index: UInt64, _ configuration: Configuration?) -> Entry {
        configuration.map { Entry(term: 1, index: index, kind: .config, data: $0.encoded) } ?? Entry(term: 1, index: index, data: [1])
    }

    @Test func followsTheLogAndSurvivesReopening() throws {
        let dir = TemporaryDirectory()
        let file = try MembershipFile.open(directory: dir.path)
        #expect(file.configuration(at: 100) == nil, "no file: the seed configuration")
        let a = config([1, 2, 3], learners: [4]), b = config([1, 2, 3, 4]), c = config([2, 3, 4])
        try file.logWritten(from: 5, entries: [entry(5, nil), entry(6, a), entry(7, nil)])
        try file.logWritten(from: 8, entries: [entry(8, b), entry(9, c)])
        #expect(file.configuration(at: 5) == nil && file.configuration(at: 6) == a && file.configuration(at: 8) == b)
        // A new leader overwrote index 9 with something else: c is gone.
        try file.logWritten(from: 9, entries: [entry(9, nil)])
        #expect(file.configuration(at: 50) == b)
        try file.compacted(through: 20)
        #expect(file.records.count == 1 && file.configuration(at: 20) == b)
        let reopened = try MembershipFile.open(directory: dir.path)
        #expect(reopened.configuration(at: 20) == b)
        try reopened.snapshotInstalled(index: 40, configuration: c)
        #expect(try MembershipFile.open(directory: dir.path).records.map(\.index) == [40])
        #expect(try MembershipFile.open(directory: dir.path).configuration(at: 40) == c)
    }

    @Test func aDamagedFileIsRefused() throws {
        let dir = TemporaryDirectory()
        let file = try MembershipFile.open(directory: dir.path)
        try file.logWritten(from: 1, entries: [entry(1, config([1]))])
        let path = dir.path + "/membership"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[12] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: StorageError.self) { try MembershipFile.open(directory: dir.path) }
    }
}
