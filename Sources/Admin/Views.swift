import Foundation
import JSONPath
import Rules
import Store
import Roles

/// What one inbound message (or timer firing) became, read off its timeline entries.
struct FeedItem: Sendable {
    var cursor: Int64
    var at: Date
    var conversationId: String?
    var endpoint: String?
    var who: String?
    var messageId: String?
    var type: String
    /// parked, no-rule, dropped, delayed, sent, acked, waiting, failed, processed
    var state: String
    var rules: [String]
    var summary: String
    var parkedId: String?

    static let states = ["parked", "no-rule", "dropped", "delayed", "sent", "acked", "waiting", "failed", "processed"]

    init(_ g: TimelineGroup) {
        let first = g.entries.first
        let kinds = Set(g.entries.map(\.kind))
        cursor = g.cursor
        at = first?.at ?? Date(timeIntervalSince1970: 0)
        conversationId = first?.conversationId
        endpoint = first?.endpoint
        who = first?.who
        messageId = first?.messageId
        rules = g.entries.filter { $0.kind == .ruleMatched || $0.kind == .dropped }.compactMap(\.rule)
        switch first?.kind {
        case .received?: type = first.map(Legacy.messageType) ?? "?"
        case .acked?, .ackError?, .waiting?: type = "ack"
        case .timerFired?: type = "timer"
        default: type = first?.kind.rawValue ?? "?"
        }
        let sent = g.entries.filter { $0.kind == .sent }
        if kinds.contains(.ackUnhandled) || first?.kind == .ackError {
            state = "failed"
        } else if first?.kind == .acked {
            state = "acked"
        } else if first?.kind == .waiting {
            state = "waiting"
        } else if kinds.contains(.dropped) || kinds.contains(.echo) {
            state = "dropped"
        } else if kinds.contains(.noRule) {
            state = "no-rule"
        } else if sent.contains(where: Legacy.delayed) || (sent.isEmpty && kinds.contains(.delayScheduled)) {
            state = "delayed"
        } else if !sent.isEmpty {
            state = "sent"
        } else {
            state = "processed"
        }
        summary = first?.detail ?? ""
        if !sent.isEmpty { summary += "; sent " + sent.map { "\(Legacy.messageType($0)) to \($0.endpoint ?? "?")" }.joined(separator: ", ") }
    }

    init(parked p: ParkedMessage) {
        cursor = 0
        at = Time.parse(p.parkedAt) ?? Date(timeIntervalSince1970: 0)
        conversationId = nil
        endpoint = p.endpoint
        who = nil
        messageId = p.messageId
        type = p.original?.properties.type ?? "?"
        state = "parked"
        rules = []
        summary = p.reason
        parkedId = p.id
    }

    var json: JSONText {
        .object([
            "cursor": .int(Int(cursor)), "at": .string(Time.iso(at)), "conversation_id": .optional(conversationId),
            "endpoint": .optional(endpoint), "who": .optional(who), "message_id": .optional(messageId), "type": .string(type),
            "state": .string(state), "rules": .array(rules.map { .string($0) }), "summary": .string(summary),
            "parked_id": .optional(parkedId),
        ])
    }
}

/// A timeline entry as shown: with its time, the time since the message it answers (an ack after its
/// outbound message), and its body pretty-printed.
struct EntryView: Sendable {
    var entry: TimelineEntry
    var hop: TimeInterval?
    var answers: String?
    var outbound: OutboundRecord?
    var audit: AuditRecord?

    var json: JSONText {
        let e = entry
        var members: [(String, JSONText)] = [
            ("at", .string(Time.iso(e.at))), ("kind", .string(e.kind.rawValue)), ("endpoint", .optional(e.endpoint)), ("who", .optional(e.who)),
            ("message_id", .optional(e.messageId)), ("rule", .optional(e.rule)), ("detail", .string(e.detail)),
            ("body", .optional(e.body)),
        ]
        members.append(("answers", .optional(answers)))
        members.append(("hop_ms", hop.map { .int(Int(($0 * 1000).rounded())) } ?? .null))
        members.append(("since_intake_ms", e.sinceIntakeMs.map { .int($0) } ?? .null))
        if let o = outbound {
            members.append(("outbound", .object([
                "target": .string(o.outbound.target), "type": .string(o.outbound.type), "delay_ms": .int(o.outbound.delayMs),
                "body": .string(String(decoding: o.outbound.body, as: UTF8.self)),
                "failed_at": o.failedAt.map { .string(Time.iso($0)) } ?? .null, "failure": .optional(o.failure),
            ])))
        }
        return .dict(members)
    }
}

enum ConversationView {
    /// The timeline with administrators' actions merged in by time, and the hops measured.
    static func entries(_ r: ConversationRecord) -> [EntryView] {
        var sentAt: [String: Date] = [:]
        var out: [EntryView] = []
        for e in r.timeline {
            var v = EntryView(entry: e)
            if e.kind == .sent, let id = e.messageId {
                sentAt[id] = e.at
                v.outbound = r.outbound[id]
            }
            if e.kind == .acked || e.kind == .ackError || e.kind == .waiting, let id = Legacy.answers(e) {
                v.answers = id
                if let sent = sentAt[id] { v.hop = e.at.timeIntervalSince(sent) }
            }
            out.append(v)
        }
        for a in r.audit {
            let e = TimelineEntry(
                conversationId: r.snapshot.id, at: a.at, kind: .admin(a.action), endpoint: a.endpoint, who: a.who,
                messageId: a.messageId,
                detail: a.parkedId.isEmpty
                    ? "\(a.action) by \(a.who): \(a.reason) (\(a.detail))"
                    : "\(a.action) of parked message \(a.parkedId) by \(a.who): \(a.reason) (\(a.detail))")
            var v = EntryView(entry: e)
            v.audit = a
            out.append(v)
        }
        return out.enumerated().sorted { ($0.element.entry.at, $0.offset) < ($1.element.entry.at, $1.offset) }.map(\.element)
    }


    static func json(_ r: ConversationRecord) -> JSONText {
        let s = r.snapshot
        return .dict([
            ("id", .string(s.id)), ("version", .int(s.version)),
            ("created_at", .string(Time.iso(r.createdAt))), ("updated_at", .string(Time.iso(r.updatedAt))),
            ("tickets", .array(s.references.sorted { $0.key < $1.key }.map { .object(["endpoint": .string($0.key), "ticket_id": .string($0.value)]) })),
            ("attributes", .dict(s.shownAttributes.sorted { $0.key < $1.key }.map { ($0.key, .raw($0.value.serializedString)) })),
            ("counters", .dict(s.shownCounters.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("timeline", .array(entries(r).map(\.json))),
        ])
    }
}

/// JSON bodies indented for reading; anything else as it is.
enum Pretty {
    static func body(_ text: String?) -> String? {
        guard let text else { return nil }
        guard let json = try? JSON.parse(text) else { return text }
        var out = ""
        write(json, indent: 0, &out)
        return out
    }

    static func write(_ v: JSON, indent: Int, _ out: inout String) {
        let pad = String(repeating: "  ", count: indent + 1)
        let end = String(repeating: "  ", count: indent)
        switch v {
        case .array(let items) where !items.isEmpty:
            out += "[\n"
            for (n, item) in items.enumerated() {
                out += pad
                write(item, indent: indent + 1, &out)
                out += n < items.count - 1 ? ",\n" : "\n"
            }
            out += end + "]"
        case .object(let members) where !members.isEmpty:
            out += "{\n"
            for (n, key) in members.keys.sorted().enumerated() {
                out += pad + JSON.string(key).serializedString + ": "
                write(members[key]!, indent: indent + 1, &out)
                out += n < members.count - 1 ? ",\n" : "\n"
            }
            out += end + "}"
        default: out += v.serializedString
        }
    }
}

/// A timeline entry's typed fields, which the engine writes (`TimelineEntry.messageType`, `delayMs`,
/// `answers`). Entries stored by releases before those fields existed have only their `detail` text: for
/// them alone (the fields absent) the text is read as that release wrote it.
enum Legacy {
    static func messageType(_ e: TimelineEntry) -> String {
        if let t = e.messageType { return t }
        switch e.kind {
        case .received: return String(e.detail.prefix { $0 != " " })  // "<type> of <endpoint>/<ticket>"
        case .sent: return String(e.detail.prefix { $0 != " " })  // "<type> to <target>..."
        default: return "?"
        }
    }

    /// Whether a `sent` entry's message waits before it leaves.
    static func delayed(_ e: TimelineEntry) -> Bool {
        if e.messageType != nil { return (e.delayMs ?? 0) > 0 }
        return e.detail.contains("(leaves in ")
    }

    static func answers(_ e: TimelineEntry) -> String? {
        if let id = e.answers { return id }
        guard e.messageType == nil, let m = e.detail.firstMatch(of: #/ack of \S+ (\S+) to /#) else { return nil }
        return String(m.1)
    }
}
