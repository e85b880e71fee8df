import ClusterTestSupport
import Foundation
import Testing

/// A client written only from the README, in Python with the official protobuf package,
/// reads and writes through the gateway.
@Suite(.serialized)
struct PythonClientTests {
    @Test func pythonExampleClientSelfTest() throws {
        let root = LocalCluster.packageRoot
        let generated = FileManager.default.temporaryDirectory.appendingPathComponent("kvraft-py-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: generated, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: generated) }
        let protoc = try run("/usr/bin/env", ["protoc", "--python_out=\(generated.path)", "-I", root.appendingPathComponent("proto").path,
                                              root.appendingPathComponent("proto/kv.proto").path])
        try #require(protoc.status == 0, "protoc failed: \(protoc.output)")

        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: 1))
        defer { cluster.shutdown() }
        try cluster.start()
        #expect(cluster.waitForLeader() != nil)
        let gateway = "127.0.0.1:\(cluster.gatewayPorts[0])"
        let script = root.appendingPathComponent("examples/python/kvclient.py").path
        let environment = ["PYTHONPATH": generated.path]
        let selftest = try run("/usr/bin/env", ["python3", script, "--gateway", gateway, "selftest"], environment: environment)
        #expect(selftest.status == 0, "python selftest failed:\n\(selftest.output)\n\(cluster.logs())")
        #expect(selftest.output.contains("0 failed"))

        let put = try run("/usr/bin/env", ["python3", script, "--gateway", gateway, "put", "lang", "python"], environment: environment)
        #expect(put.status == 0, "\(put.output)")
        let get = try run("/usr/bin/env", ["python3", script, "--gateway", gateway, "get", "lang"], environment: environment)
        #expect(get.status == 0 && get.output.contains("python"), "\(get.output)")
    }

    private func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
