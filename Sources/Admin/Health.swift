import AMQP
import Foundation
import Rules
import Store
import Roles
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

struct EndpointHealth: Sendable {
    var name: String
    var description: String
    var inbound: Int?
    var inboundConsumers: Int?
    var outbound: Int?
    var outboundConsumers: Int?
    var parked: Int
    /// Outbound messages to this endpoint waiting out their delay (nil: the store did not answer).
    var delayed: Int?
    var oldestAge: TimeInterval?
    /// operational, warning, error
    var status: String
    var reasons: [String]

    var json: JSONText {
        .object([
            "name": .string(name), "description": .string(description), "status": .string(status),
            "reasons": .array(reasons.map { .string($0) }),
            "inbound": .object(["queue": .string(Contract.inboundQueue(name)), "messages": inbound.map { .int($0) } ?? .null,
                                "consumers": inboundConsumers.map { .int($0) } ?? .null]),
            "outbound": .object(["queue": .string(Contract.outboundQueue(name)), "messages": outbound.map { .int($0) } ?? .null,
                                 "consumers": outboundConsumers.map { .int($0) } ?? .null]),
            "parked": .int(parked), "delayed_pending": delayed.map { .int($0) } ?? .null,
            "oldest_message_age_seconds": oldestAge.map { .double(($0 * 1000).rounded() / 1000) } ?? .null,
        ])
    }
}

struct HealthReport: Sendable {
    var endpoints: [EndpointHealth]
    var delayed: Int?
    var parkedTotal: Int?
    var brokerError: String?
    /// Why the oldest messages' ages are unknown (the management API did not answer), if they are.
    var ageError: String? = nil
    var at: Date

    var json: JSONText {
        .object([
            "at": .string(Time.iso(at)), "broker_error": .optional(brokerError), "age_error": .optional(ageError),
            "delayed_pending": delayed.map { .int($0) } ?? .null,
            "parked_total": parkedTotal.map { .int($0) } ?? .null, "endpoints": .array(endpoints.map(\.json)),
        ])
    }

    static func assess(
        config: SwitchboardConfig, settings: AdminSettings, queues: [String: QueueInfo]?, brokerError: String?,
        parked: ParkedCounts?, delayed: [String: Int]?, now: Date
    ) -> HealthReport {
        let parkedBy = parked?.endpoints ?? [:]
        let endpoints = config.endpointNames.map { name -> EndpointHealth in
            let e = config.endpoints[name]
            var h = EndpointHealth(
                name: name, description: e?.description ?? "", parked: parkedBy[name] ?? 0, delayed: delayed.map { $0[name] ?? 0 },
                status: "operational", reasons: [])
            guard let queues else {
                h.status = "error"
                h.reasons = ["broker unreachable: \(brokerError ?? "no answer")"]
                return h
            }
            let inbound = queues[Contract.inboundQueue(name)]
            let outbound = queues[Contract.outboundQueue(name)]
            h.inbound = inbound?.messages
            h.inboundConsumers = inbound?.consumers
            h.outbound = outbound?.messages
            h.outboundConsumers = outbound?.consumers
            let heads = [inbound, outbound].compactMap { $0?.messages ?? 0 > 0 ? $0?.headTimestamp : nil }
            h.oldestAge = heads.min().map { max(0, now.timeIntervalSince($0)) }
            var errors: [String] = []
            var warnings: [String] = []
            if inbound == nil { errors.append("queue \(Contract.inboundQueue(name)) does not exist: Switchboard has not declared its topology") }
            if let inbound, inbound.consumers == 0 { errors.append("no consumer on \(inbound.name): no intake is running") }
            for q in [inbound, outbound].compactMap({ $0 }) where q.messages > settings.warnDepth {
                warnings.append("\(q.name) holds \(q.messages) messages (over \(settings.warnDepth))")
            }
            if let age = h.oldestAge, age > Double(settings.warnAgeSeconds) {
                warnings.append("the oldest waiting message is \(Time.duration(age)) old (over \(settings.warnAgeSeconds) s)")
            }
            if let outbound, outbound.consumers == 0, outbound.messages > 0 {
                warnings.append("nobody consumes \(outbound.name): the ESB is not reading its messages")
            }
            if h.parked > 0 { warnings.append("\(h.parked) parked message(s)") }
            h.status = !errors.isEmpty ? "error" : !warnings.isEmpty ? "warning" : "operational"
            h.reasons = errors + warnings
            return h
        }
        let delayed = queues.map { $0.values.filter { $0.name.hasPrefix("sb.delayq.") }.reduce(0) { $0 + $1.messages } }
        return HealthReport(endpoints: endpoints, delayed: delayed, parkedTotal: parked?.total, brokerError: brokerError, at: now)
    }
}
