import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import Testing
import Wire

/// The Prometheus text exposition format, parsed strictly enough to catch a malformed line:
/// `# TYPE name kind`, and `name{label="value",…} number` samples.
struct MetricsText {
    struct Sample: Equatable {
        let name: String
        let labels: [String: String]
        let value: Double

        func has(_ wanted: [String: String]) -> Bool {
            wanted.allSatisfy { key, value in labels[key] == value }
        }
    }

    var types: [String: String] = [:]
    var samples: [Sample] = []

    init(_ text: String) throws {
        for line in text.split(separator: "\n") where !line.isEmpty {
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                if parts.count == 4, parts[1] == "TYPE" { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw EventLoopError("not a sample: \(line)")
            }
            let series = line[..<space]
            var labels: [String: String] = [:]
            var name = String(series)
            if let open = series.firstIndex(of: "{") {
                guard series.last == "}" else { throw EventLoopError("unclosed labels: \(line)") }
                name = String(series[..<open])
                for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2, kv[1].hasPrefix("\""), kv[1].hasSuffix("\"") else { throw EventLoopError("bad label: \(line)") }
                    labels[String(kv[0])] = String(kv[1].dropFirst().dropLast())
                }
            }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else { throw EventLoopError("bad name: \(line)") }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && sample.has(labels) }?.value
    }

    /// A histogram's buckets are cumulative and its `+Inf` bucket equals its count.
    func histogramIsConsistent(_ name: String, _ labels: [String: String] = [:]) -> Bool {
        let buckets = samples.filter { sample in sample.name == name + "_bucket" && sample.has(labels) }
        guard let infinite = buckets.first(where: { $0.labels["le"] == "+Inf" }), let count = value(name + "_count", labels) else { return false }
        let counts = buckets.map(\.value)
        return zip(counts, counts.dropFirst()).allSatisfy { $0 <= $1 } && infinite.value == count && types[name] == "histogram"
    }
}

/// Every process of a running cluster serves /metrics with the etcd-like names the issue
/// lists, in a text format that parses, with values that fit what the cluster did.
@Suite(.serialized)
struct MetricsTests {
    @Test func everyEndpointScrapesAndParses() throws {
        let ports = try OperatorPorts(nodes: 3, gateways: 1)
        var options = ClusterOptions()
        options.extraArguments = { kind, number in ["--metrics-listen", "127.0.0.1:\(ports.port(kind, number))"] }
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        let clerk = Clerk(endpoints: cluster.gatewayEndpoints, attemptTimeoutMs: 2000, operationTimeoutMs: 15_000)
        for i in 0..<20 {
            guard case let .completed(response) = clerk.put(Array("key\(i)".utf8), Array("value".utf8)), response.status == .ok else {
                Issue.record("put \(i) failed\n\(cluster.logs())")
                return
            }
        }

        var leaders = 0
        for node in 1...3 {
            let raft = try #require(ports.scrape(.raftd, node), "raftd \(node) /metrics")
            #expect(raft.value("kvraft_raft_has_leader") == 1)
            leaders += raft.value("kvraft_raft_is_leader") == 1 ? 1 : 0
            #expect((raft.value("kvraft_raft_term") ?? 0) >= 1)
            #expect((raft.value("kvraft_raft_commit_index") ?? 0) >= 20)
            #expect((raft.value("kvraft_raft_leader_changes_seen_total") ?? 0) >= 1)
            #expect((raft.value("kvraft_raft_proposals_committed_total") ?? 0) >= 1)
            #expect(raft.histogramIsConsistent("kvraft_raft_wal_fsync_duration_seconds"))
            #expect((raft.value("kvraft_raft_wal_fsync_duration_seconds_count") ?? 0) >= 1)
            #expect(raft.histogramIsConsistent("kvraft_raft_snapshot_duration_seconds"))
            for peer in 1...3 where peer != node {
                #expect(raft.histogramIsConsistent("kvraft_raft_peer_round_trip_time_seconds", ["to": "\(peer)"]))
            }
            #expect(raft.types["kvraft_raft_leader_changes_seen_total"] == "counter")
            #expect(raft.types["kvraft_raft_term"] == "gauge")

            let kv = try #require(ports.scrape(.kvd, node), "kvd \(node) /metrics")
            #expect(eventually { (ports.scrape(.kvd, node)?.value("kvraft_kv_applied_index") ?? 0) >= 20 })
            #expect(kv.value("kvraft_kv_keys") != nil)
            #expect(kv.value("kvraft_kv_sessions") != nil)
            // The gateway keeps a link to every kvd.
            #expect((kv.value("kvraft_kv_client_connections") ?? 0) >= 1)
            #expect(kv.value("kvraft_kv_client_connections_refused_total") == 0)
        }
        #expect(leaders == 1)
        let leaderKvd = try #require((1...3).compactMap { ports.scrape(.kvd, $0) }.first { ($0.value("kvraft_kv_requests_total", ["op": "put", "outcome": "ok"]) ?? 0) >= 20 },
                                     "no kvd counted the 20 puts")
        #expect(leaderKvd.value("kvraft_kv_keys") == 20)

        let gateway = try #require(ports.scrape(.gateway, 1), "gateway /metrics")
        #expect(gateway.value("kvraft_gateway_requests_total", ["op": "put", "outcome": "ok"]) == 20)
        #expect(gateway.histogramIsConsistent("kvraft_gateway_request_duration_seconds"))
        #expect((gateway.value("kvraft_gateway_request_duration_seconds_count") ?? 0) >= 20)
        #expect(gateway.value("kvraft_gateway_failovers_total") != nil)
        #expect(gateway.value("kvraft_gateway_client_connections") != nil)
        #expect(gateway.value("kvraft_gateway_client_connections_refused_total") == 0)
        for node in 1...3 { #expect(gateway.value("kvraft_gateway_upstream_up", ["node": "\(node)"]) == 1) }

        // Every process times its renders: each was scraped above, so this scrape shows one.
        let everyProcess: [(ClusterProcess.Kind, Int)] = (1...3).flatMap { [(.raftd, $0), (.kvd, $0)] } + [(.gateway, 1)]
        for (kind, number) in everyProcess {
            let text = try #require(ports.scrape(kind, number), "\(kind) \(number) /metrics")
            #expect(text.histogramIsConsistent("kvraft_metrics_render_duration_seconds"), "\(kind) \(number)")
            #expect((text.value("kvraft_metrics_render_duration_seconds_count") ?? 0) >= 1, "\(kind) \(number)")
            #expect((text.value("kvraft_metrics_render_duration_seconds_sum") ?? 0) > 0, "\(kind) \(number)")
        }
    }
}

/// Free ports for every process's `--metrics-listen`, and scraping them.
struct OperatorPorts: Sendable {
    let ports: [Int]
    let nodes: Int

    init(nodes: Int, gateways: Int) throws {
        let reservation = try PortReservation(count: 2 * nodes + gateways)
        ports = reservation.ports
        self.nodes = nodes
        reservation.release()
    }

    func port(_ kind: ClusterProcess.Kind, _ number: Int) -> Int {
        switch kind {
        case .raftd: ports[number - 1]
        case .kvd: ports[nodes + number - 1]
        case .gateway: ports[2 * nodes + number - 1]
        }
    }

    func endpoint(_ kind: ClusterProcess.Kind, _ number: Int) -> Endpoint { .tcp(host: "127.0.0.1", port: port(kind, number)) }

    func scrape(_ kind: ClusterProcess.Kind, _ number: Int) -> MetricsText? {
        let result = HealthProbe.get(endpoint(kind, number), path: "/metrics", timeoutMs: 2000)
        guard result.status == 200 else { return nil }
        return try? MetricsText(result.detail)
    }

    func health(_ kind: ClusterProcess.Kind, _ number: Int) -> HealthProbe.Result {
        HealthProbe.check(endpoint(kind, number), timeoutMs: 2000)
    }
}
