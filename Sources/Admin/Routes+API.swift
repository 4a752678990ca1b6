import Foundation
import Hummingbird
import JSONPath
import NIOCore
import Rules
import Store

/// `/api/v1/`: the same data as the pages, as documented in docs/openapi.yaml.
struct APIRoutes {
    let s: AdminServices

    func add(to router: Router<AdminContext>) {
        router.get("/health") { _, _ in JSONText.object(["status": .string("ok")]).response() }
        let api = router.group("/api/v1")
        api.get("me") { _, c in
            let id = try c.require(.viewer)
            return JSONText.object(["name": .string(id.name), "role": .string(id.role.rawValue), "token": .bool(id.viaToken)]).response()
        }
        api.get("conversations") { r, c in
            _ = try c.require(.viewer)
            guard let ticket = r.uri.queryParameters.get("ticket"), !ticket.isEmpty else {
                throw ProblemError(status: .badRequest, detail: "give a ticket id: /api/v1/conversations?ticket=INC0010001")
            }
            let hits = try await s.store.tickets(ticket, endpoints: s.config.endpointNames)
            return JSONText.object([
                "ticket": .string(ticket),
                "conversations": .array(hits.map {
                    .object(["endpoint": .string($0.endpoint), "ticket_id": .string($0.ticketId), "conversation_id": .string($0.conversationId)])
                }),
            ]).response()
        }
        api.get("conversations/:id") { _, c in
            _ = try c.require(.viewer)
            return ConversationView.json(try await s.conversation(try c.parameters.require("id"))).response()
        }
        // A data-protection request: the conversation's bodies, attributes and parked copies blanked, audited.
        api.post("conversations/:id/erase") { r, c in
            let who = try c.require(.operator)
            var r = r
            let buffer = try await r.collectBody(upTo: 64 << 10)
            guard case .object(let o)? = try? JSON.parse(Data(buffer: buffer)),
                let reason = o["reason"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !reason.isEmpty
            else {
                throw ProblemError(status: .badRequest, detail: "send a JSON object with the reason: {\"reason\": \"data-protection request #123\"}")
            }
            let id = try c.parameters.require("id")
            guard let erased = try await s.store.erase(conversationId: id) else { throw ProblemError(status: .notFound, detail: "no conversation \(id)") }
            let record = AdminStoreRecord.erasure(erased, conversationId: id, who: who.name, reason: String(reason.prefix(500)))
            try await s.store.append(audit: record)
            s.logger.notice("conversation erased", metadata: ["sb.conversation": "\(id)", "sb.who": "\(who.name)", "sb.detail": "\(record.detail)"])
            return JSONText.object([
                "conversation_id": .string(id), "timeline_entries": .int(erased.timelineEntries), "attributes": .int(erased.attributes),
                "outbound_bodies": .int(erased.outboundBodies), "parked": .int(erased.parked),
            ]).response()
        }
        api.get("messages") { r, c in
            _ = try c.require(.viewer)
            let (items, next) = try await s.feed(try FeedFilter(r, config: s.config))
            return JSONText.object(["messages": .array(items.map(\.json)), "next_before": next.map { .int(Int($0)) } ?? .null]).response()
        }
        api.get("endpoints") { _, c in
            _ = try c.require(.viewer)
            return await s.health().json.response()
        }
        api.get("parked") { r, c in
            _ = try c.require(.viewer)
            let list = try await s.parkedList(
                group: r.uri.queryParameters.get("group"), after: r.uri.queryParameters.get("after").flatMap { Int64($0) } ?? 0)
            return JSONText.object([
                "total": .int(list.total), "shown": .int(list.messages.count),
                "groups": .array(list.groups.map { .object(["reason": .string($0.reason), "count": .int($0.count)]) }),
                "messages": .array(list.messages.map(\.summaryJSON)),
            ]).response()
        }
        api.get("parked/:id") { _, c in
            _ = try c.require(.viewer)
            return try await s.parkedMessage(try c.parameters.require("id")).detailJSON.response()
        }
        api.post("parked/actions") { r, c in
            let who = try c.require(.operator)
            var r = r
            let buffer = try await r.collectBody(upTo: c.maxUploadSize)
            guard case .object(let o)? = try? JSON.parse(Data(buffer: buffer)) else {
                throw ProblemError(status: .badRequest, detail: "send a JSON object: {\"action\": \"replay\", \"ids\": [...], \"reason\": \"...\"}")
            }
            var ids: [String] = []
            if case .array(let a)? = o["ids"] { ids = a.compactMap(\.stringValue) }
            let job = try await s.startJob(action: o["action"]?.stringValue, ids: ids, reason: o["reason"]?.stringValue, identity: who)
            return job.json.response(status: .accepted, headers: [.location: "/api/v1/parked/actions/\(job.id)"])
        }
        api.get("parked/actions/:job") { _, c in
            _ = try c.require(.viewer)
            guard let job = s.jobs.get(try c.parameters.require("job")) else { throw ProblemError(status: .notFound, detail: "no such job") }
            return job.json.response()
        }
        api.post("parked/actions/:job/cancel") { _, c in
            _ = try c.require(.operator)
            guard let job = s.jobs.cancel(try c.parameters.require("job")) else { throw ProblemError(status: .notFound, detail: "no such job") }
            return job.json.response()
        }
        api.get("audit") { r, c in
            _ = try c.require(.viewer)
            let limit = r.uri.queryParameters.get("limit").flatMap { Int($0) }.map { min(max($0, 1), 1000) } ?? 100
            return JSONText.object(["records": .array(try await s.store.audit(limit: limit, withoutConversation: false).map(\.json))]).response()
        }
        api.get("config") { _, c in
            _ = try c.require(.viewer)
            return s.configJSON.response()
        }
    }
}

extension AuditRecord {
    var json: JSONText {
        .object([
            "id": .int(Int(id)), "at": .string(Time.iso(at)), "who": .string(who), "action": .string(action), "reason": .string(reason),
            "conversation_id": .optional(conversationId), "endpoint": .optional(endpoint), "message_id": .optional(messageId),
            "parked_id": .string(parkedId), "detail": .string(detail),
        ])
    }
}

extension AdminServices {
    var configJSON: JSONText {
        let src = config.source
        return .object([
            "hash": .string(src.contentHash), "loaded_at": .string(Time.iso(src.loadedAt)), "files": .array(src.files.map { .string($0) }),
            "endpoints": .array(config.endpointNames.compactMap { config.endpoints[$0] }.map {
                .object(["name": .string($0.name), "description": .string($0.description), "ticket_id": .string($0.ticketId.source)])
            }),
            "rules": .array(config.rules.map { r in
                .object([
                    "name": .string(r.name), "description": .string(r.description), "priority": .int(r.priority),
                    "from": .array(r.from.sorted().map { .string($0) }), "types": .array(r.types.sorted().map { .string($0) }),
                    "timer": .optional(r.timer), "location": .string(r.location.description),
                ])
            }),
        ])
    }
}
