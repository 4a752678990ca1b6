import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Metrics
import Rules
import Roles
import Telemetry
import Testing

@testable import Operations

/// What ops read without a broker: the exposition's names and HELP lines, the probes' logic, the JSON log
/// lines, and the settings that configure them.
@Suite struct ExpositionTests {
    @Test func everyFamilyFollowsPrometheusNaming() {
        let names = Meters.families.map(\.name)
        #expect(Set(names).count == names.count, "a family is listed twice")
        for f in Meters.families {
            #expect(f.name.hasPrefix("switchboard_"), "\(f.name)")
            #expect(f.name.range(of: "^[a-z_]+$", options: .regularExpression) != nil, "\(f.name)")
            #expect((f.kind == .counter) == f.name.hasSuffix("_total"), "\(f.name): _total is for counters, and counters have it")
            #expect(!f.help.isEmpty && !f.help.contains("\n"), "\(f.name)")
            #expect(!f.name.hasSuffix("_milliseconds") && !f.name.hasSuffix("_ms"), "\(f.name): base units (seconds)")
            for label in f.labels {
                #expect(!["ticket", "ticket_id", "conversation", "conversation_id", "message_id"].contains(label), "\(f.name): \(label) is unbounded")
            }
        }
    }

    @Test func helpLinesGoBeforeTheirTypeLines() {
        let raw = """
            # TYPE switchboard_acks_total counter
            switchboard_acks_total{endpoint="vendor-x",outcome="ok"} 3
            # TYPE somebody_elses gauge
            somebody_elses 1

            """
        let lines = Ops.annotate(raw).split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("# HELP switchboard_acks_total Acknowledgements received") == true)
        #expect(lines[1] == "# TYPE switchboard_acks_total counter")
        #expect(lines[2] == #"switchboard_acks_total{endpoint="vendor-x",outcome="ok"} 3"#)
        // Not ours: no invented HELP.
        #expect(lines[3] == "# TYPE somebody_elses gauge")
        #expect(Ops.annotate(raw).hasSuffix("somebody_elses 1\n"))
    }

    @Test func aPortSomeoneListensOnIsNotFree() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else {
            close(fd)
            Issue.record("could not bind a socket on 127.0.0.1")
            return
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        #expect(!Ops.portIsFree(host: "127.0.0.1", port: port))
        close(fd)
        #expect(Ops.portIsFree(host: "127.0.0.1", port: port))
    }

    @Test func metricsListenDefaultsToTheRolesPortOnLoopback() throws {
        var s = Settings()
        #expect(Ops.listenAddress(s, role: "worker")! == ("127.0.0.1", 9463))
        #expect(Ops.listenAddress(s, role: "run")! == ("127.0.0.1", 9460))
        s.metricsListen = "0.0.0.0:9000"
        #expect(Ops.listenAddress(s, role: "worker")! == ("0.0.0.0", 9000))
        s.metricsListen = "off"
        #expect(Ops.listenAddress(s, role: "worker") == nil)
    }
}

@Suite struct ReadinessTests {
    @Test func readyOnlyWhenEveryPartIsReady() {
        let r = Readiness(stallLimit: 60)
        #expect(!r.report().ready, "nothing registered: not ready")
        r.set("intake", ready: false, "connecting to the broker")
        #expect(!r.report().ready)
        r.set("intake", ready: true, "consuming 3 queue(s)")
        #expect(r.report().ready)
        r.set("worker-0", ready: false, "starting")
        #expect(!r.report().ready)
        #expect(r.report().parts.map(\.name) == ["intake", "worker-0"])
        r.remove("worker-0")
        #expect(r.report().ready)
    }

    @Test func aPartThatStopsTickingIsNotLive() {
        let r = Readiness(stallLimit: 60)
        r.set("store", ready: true, "consuming")
        #expect(r.report().live)
        let later = Date().addingTimeInterval(61)
        #expect(!r.report(now: later).live)
        #expect(r.report(now: later).stalled == ["store"])
        r.tick("store")
        #expect(r.report(now: Date().addingTimeInterval(30)).live)
    }

    @Test func sinceChangesOnlyWhenReadinessDoes() throws {
        let r = Readiness()
        r.set("intake", ready: true, "a")
        let first = try #require(r.report().parts.first).since
        Thread.sleep(forTimeInterval: 0.01)
        r.set("intake", ready: true, "b")
        #expect(r.report().parts.first?.since == first)
        r.set("intake", ready: false, "c")
        #expect(r.report().parts.first?.since != first)
    }
}

@Suite struct JSONLogTests {
    @Test func oneJSONObjectPerLineWithTheMetadata() throws {
        let line = JSONLogHandler.line(
            time: Date(timeIntervalSince1970: 1_700_000_000.5), level: .warning, label: "switchboard",
            message: "message parked: \"quoted\"\nsecond line\u{1}",
            metadata: ["sb.role": "intake", "sb.message-id": "m-1", "sb.endpoint": .stringConvertible(42), "sb.list": ["a", "b"]],
            source: "Switchboard")
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "warning")
        #expect(object["message"] as? String == "message parked: \"quoted\"\nsecond line\u{1}")
        #expect(object["sb.role"] as? String == "intake")
        #expect(object["sb.message-id"] as? String == "m-1")
        #expect(object["sb.endpoint"] as? String == "42")
        #expect(object["sb.list"] as? [String] == ["a", "b"])
        #expect(object["time"] as? String == "2023-11-14T22:13:20.500Z")
        #expect(object["source"] as? String == "Switchboard")
    }
}

@Suite struct OperationsConfigTests {
    let endpoints = """
        endpoints:
          customer-a:
            ticket_id: $.number
            backlog_threshold: 250
        """

    func load(_ settings: String) throws -> SwitchboardConfig {
        try ConfigLoader.load(files: [("endpoints.yaml", endpoints), ("settings.yaml", settings)], environment: [:])
    }

    @Test func theSettingsAreReadAndChecked() throws {
        let c = try load("settings:\n  metrics_listen: 0.0.0.0:9500\n  log_format: json\n  queue_type: quorum\n  management_url: http://mq:15672")
        #expect(c.settings.metricsListen == "0.0.0.0:9500")
        #expect(c.settings.logFormat == "json")
        #expect(c.settings.queueType == "quorum")
        #expect(c.settings.managementURL == "http://mq:15672")
        #expect(c.endpoints["customer-a"]?.backlogThreshold == 250)
        #expect(try load("settings:\n  metrics_listen: \"\"").settings.metricsListen == nil)
        for bad in ["metrics_listen: nowhere", "log_format: xml", "queue_type: stream"] {
            #expect(throws: ConfigErrors.self, "\(bad)") { try load("settings:\n  \(bad)") }
        }
    }
}
