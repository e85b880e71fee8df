import Foundation
import Raft
import Testing
@testable import RaftStorage

/// The data-dir id (written at bootstrap, kept across restarts, new when the dir is wiped) and
/// the durable record of the id each peer was first seen with.
@Suite struct DataDirIdentityTests {
    @Test func aNewDataDirGetsAnIdThatSurvivesRestarts() throws {
        let dir = TemporaryDirectory()
        let first = try openLog(dir)
        #expect(first.dataDirCreated && first.dataDirID != 0)
        let id = first.dataDirID
        try first.append(makeEntries(1...3, term: 1))
        try first.sync()
        first.close()

        let reopened = try openLog(dir)
        #expect(!reopened.dataDirCreated)
        #expect(reopened.dataDirID == id)
        reopened.close()
    }

    @Test func aWipedDataDirComesBackUnderANewId() throws {
        let dir = TemporaryDirectory()
        let before = try openLog(dir)
        let id = before.dataDirID
        before.close()
        try FileManager.default.removeItem(atPath: dir.dataDir)
        let after = try openLog(dir)
        #expect(after.dataDirCreated)
        #expect(after.dataDirID != id && after.dataDirID != 0)
        #expect(after.peerIdentities.known.isEmpty, "a wiped dir knows no peers")
        after.close()
    }

    @Test func versionOneMetadataIsGivenAnIdOnce() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...2, term: 1))
            try log.sync()
            log.close()
        }
        // What a build without data-dir ids wrote: 32 bytes, version 1.
        var old = DataDirMetadata.magic
        old.appendLittleEndian(UInt32(1))
        old.appendLittleEndian(testCluster)
        old.appendLittleEndian(testNode)
        old.appendLittleEndian(CRC32C.checksum(old))
        try writeFile(dir.dataDir + "/metadata", old)

        let upgraded = try openLog(dir)
        #expect(!upgraded.dataDirCreated && upgraded.dataDirID != 0)
        #expect(upgraded.lastIndex == 2, "the log is kept")
        let id = upgraded.dataDirID
        upgraded.close()
        #expect(try readFile(dir.dataDir + "/metadata").count == DataDirMetadata.encodedSize)
        let again = try openLog(dir)
        #expect(again.dataDirID == id, "the id given at the upgrade is the one kept")
        again.close()
    }

    @Test func metadataRoundTripsAndRejectsDamage() throws {
        let metadata = DataDirMetadata(clusterID: testCluster, nodeID: testNode, dataDirID: 0x1234_5678_9ABC_DEF0)
        let bytes = metadata.encoded()
        #expect(bytes.count == DataDirMetadata.encodedSize)
        #expect(try DataDirMetadata.decode(bytes, path: "m") == metadata)
        var damaged = bytes
        damaged[30] ^= 0x40
        #expect(throws: StorageError.corruptMetadata(path: "m", reason: "checksum mismatch")) {
            try DataDirMetadata.decode(damaged, path: "m")
        }
    }

    @Test func peerIdentitiesAreDurableAndTheFirstSightingCounts() throws {
        let dir = try makeDataDir()
        let peers = try PeerIdentities.open(directory: dir.dataDir)
        #expect(peers.identity(of: 1) == nil)
        try peers.record(0xAAAA, for: 1)
        try peers.record(0xBBBB, for: 3)
        try peers.record(0xCCCC, for: 1)  // a later, different id does not replace the first
        try peers.record(0, for: 2)  // "unknown" is never recorded
        #expect(peers.identity(of: 1) == 0xAAAA)

        let reopened = try PeerIdentities.open(directory: dir.dataDir)
        #expect(reopened.known == [1: 0xAAAA, 3: 0xBBBB])
        #expect(!FileManager.default.fileExists(atPath: dir.dataDir + "/" + PeerIdentities.temporaryFileName))
    }

    @Test func aLeadersRecordAddsOnlyUnknownPeers() throws {
        let dir = try makeDataDir()
        let peers = try PeerIdentities.open(directory: dir.dataDir)
        try peers.record(0xAAAA, for: 1)
        try peers.record([1: 0xFFFF, 2: 0x2222, 3: 0, 4: 0x4444])
        #expect(peers.known == [1: 0xAAAA, 2: 0x2222, 4: 0x4444])
        #expect(try PeerIdentities.open(directory: dir.dataDir).known == peers.known)
    }

    @Test func damagedPeerIdentitiesAreRefused() throws {
        let dir = try makeDataDir()
        try PeerIdentities.open(directory: dir.dataDir).record(0xAAAA, for: 1)
        let path = dir.dataDir + "/" + PeerIdentities.fileName
        var bytes = try readFile(path)
        bytes[17] ^= 0x01
        try writeFile(path, bytes)
        let error = #expect(throws: StorageError.self) { try PeerIdentities.open(directory: dir.dataDir) }
        #expect(error == .corruptPeerIdentities(path: path, reason: "checksum mismatch"))
        #expect(error?.description.contains("restore it from a backup") == true)
    }
}
