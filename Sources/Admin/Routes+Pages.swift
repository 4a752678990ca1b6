import Foundation
import Hummingbird
import HummingbirdAuth
import JSONPath
import Mustache
import NIOCore
import Rules
import Store
import Roles

/// Rendering: every page gets the signed-in user, the form token and the navigation.
enum Pages {
    /// The templates are constants of the binary: a broken one fails every test that renders a page.
    static let library: MustacheLibrary = {
        var l = MustacheLibrary()
        for (name, text) in Templates.all {
            do { try l.register(text, named: name) } catch { fatalError("template \(name): \(error)") }
        }
        return l
    }()

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func problem(_ status: HTTPResponse.Status, _ detail: String) -> Response {
        let text = library.render(["title": "\(status.code)", "status": "\(status.code) \(status.reasonPhrase)", "detail": detail], withTemplate: "problem")
        return html(text ?? detail, status: status)
    }
}

struct PageRoutes {
    let s: AdminServices

    func render(_ name: String, _ c: AdminContext, title: String, nav: String? = nil, _ model: [String: Any]) -> Response {
        var m = model
        m["title"] = title
        m["page"] = name
        if let id = c.identity {
            m["user"] = id.name
            m["role"] = id.role.rawValue
            m["operator"] = id.role >= .operator
        }
        m["csrf"] = c.csrf ?? ""
        if let nav { m[nav] = true }
        return Pages.html(Pages.library.render(Self.present(m), withTemplate: name) ?? "template \(name) failed")
    }

    /// Leaves out absent values: an Optional's `nil` inside `Any` is a value to mustache, which shows "nil".
    static func present(_ value: Any) -> Any {
        if let d = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, v) in d {
                let m = Mirror(reflecting: v)
                if m.displayStyle == .optional {
                    guard let inner = m.children.first?.value else { continue }
                    out[k] = present(inner)
                } else {
                    out[k] = present(v)
                }
            }
            return out
        }
        if let a = value as? [[String: Any]] { return a.map { present($0) } }
        return value
    }

    /// The sign-in page with its form token (Sign-in's own CSRF: there is no session yet): a random value
    /// in a cookie only this page sets and in the form, compared on the POST (double submit). A page of
    /// another site can post the form, but cannot read or set the cookie. The token a browser holds already
    /// is kept: it loads this page more than once at a time (its favicon's request is sent here too), and a
    /// new token each time would void the form it shows.
    func signInPage(_ r: Request, _ c: AdminContext, next: String, error: String? = nil) -> Response {
        let (token, fresh) = Self.signInToken(r)
        var model: [String: Any] = ["next": next, "signin_csrf": token]
        if let error { model["error"] = error }
        var resp = render("signin", c, title: "Sign in", model)
        if fresh { resp.setCookie(Self.signInCookie(token)) }
        return resp
    }

    func add(to router: Router<AdminContext>) {
        addRules(to: router)
        router.get("/static/app.css") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=300"], body: .init(byteBuffer: ByteBuffer(string: Static.css)))
        }
        router.get("/static/app.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "max-age=300"], body: .init(byteBuffer: ByteBuffer(string: Static.js)))
        }
        router.get("/sign-in") { r, c in
            signInPage(r, c, next: SafeNext.path(r.uri.queryParameters.get("next")))
        }
        router.post("/sign-in") { r, c in
            var r = r
            let form = try await Form.read(&r, context: c)
            let user = form.first("user") ?? ""
            let next = SafeNext.path(form.first("next"))
            let address = c.client.address
            // Logged as given but bounded: a name is at most so long, whatever was posted.
            let shownUser = String(user.prefix(AdminSettings.maxUserNameLength))
            func again(_ status: HTTPResponse.Status, _ error: String, retryAfter: TimeInterval? = nil) -> Response {
                var resp = signInPage(r, c, next: next, error: error)
                resp.status = status
                if let retryAfter { resp.headers[.retryAfter] = String(Int(retryAfter.rounded(.up))) }
                return resp
            }
            guard let presented = form.first("signin_csrf"), let expected = r.cookies[Self.signInCookie]?.value,
                AuthMiddleware.constantTimeEqual(presented, expected)
            else {
                s.logger.notice("admin: sign-in without its form token", metadata: ["sb.user": "\(shownUser)", "sb.address": "\(address)"])
                return again(.forbidden, "The sign-in form had expired: sign in again.")
            }
            if let wait = s.limiter.wait(user: user, address: address) {
                s.logger.warning("admin: sign-in refused, too many failures", metadata: ["sb.user": "\(shownUser)", "sb.address": "\(address)"])
                return again(.tooManyRequests, "Too many failed attempts: wait \(Int(wait.rounded(.up))) seconds.", retryAfter: wait)
            }
            switch await s.accounts.verify(user: user, password: form.first("password") ?? "") {
            case .busy:
                s.logger.warning("admin: sign-in refused, too many at once", metadata: ["sb.address": "\(address)"])
                return again(.serviceUnavailable, "Too many sign-ins at once: try again in a moment.", retryAfter: 1)
            case .refused:
                s.limiter.failed(user: user, address: address)
                s.logger.notice("admin: sign-in failed", metadata: ["sb.user": "\(shownUser)", "sb.address": "\(address)"])
                return again(.unauthorized, "Unknown user or wrong password.")
            case .signedIn(let account):
                s.limiter.succeeded(user: user, address: address)
                c.sessions.createSession(AdminSession(user: account.name, csrf: Random.token()), expiresIn: .seconds(s.settings.sessionMinutes * 60))
                s.logger.notice("admin: signed in", metadata: ["sb.user": "\(account.name)", "sb.address": "\(address)"])
                var resp = Response(status: .seeOther, headers: [.location: next])
                resp.setCookie(Self.signInCookie("", maxAge: 0))
                return resp
            }
        }
        router.post("/sign-out") { _, c in
            c.sessions.clearSession()
            return Response(status: .seeOther, headers: [.location: "/sign-in"])
        }
        router.get("/") { _, c in
            let feed = try await s.feed(FeedFilter())
            let recent = feed.items.filter { $0.conversationId != nil }.prefix(15).map { i -> [String: Any] in
                ["at": Self.time(i.at), "conversation": i.conversationId ?? "", "endpoint": i.endpoint ?? "", "type": i.type, "state": i.state]
            }
            let parked = (try? await s.store.parkedCounts().total) ?? 0
            return render("home", c, title: "Conversations", nav: "navHome", [
                "recent": Array(recent), "conversations": try await s.store.conversationCount(), "parked": parked,
                "hash": String(s.config.source.contentHash.prefix(12)),
            ])
        }
        router.get("/search") { r, c in
            let q = (r.uri.queryParameters.get("q") ?? "").trimmingCharacters(in: .whitespaces)
            let hits = q.isEmpty ? [] : try await s.store.tickets(q, endpoints: s.config.endpointNames)
            if Set(hits.map(\.conversationId)).count == 1 {
                return Response(status: .seeOther, headers: [.location: "/conversations/\(hits[0].conversationId)"])
            }
            return render("search", c, title: "Ticket \(q)", nav: "navHome", [
                "query": q, "hits": hits.map { ["endpoint": $0.endpoint, "ticketId": $0.ticketId, "conversationId": $0.conversationId] },
            ])
        }
        router.get("/conversations/:id") { _, c in
            let r = try await s.conversation(try c.parameters.require("id"))
            return render("conversation", c, title: "Conversation", nav: "navHome", Self.model(r))
        }
        router.get("/conversations/:id/export") { _, c in
            let id = try c.parameters.require("id")
            let r = try await s.conversation(id)
            return ConversationView.json(r).response(headers: [.contentDisposition: "attachment; filename=\"conversation-\(id).json\""])
        }
        router.get("/feed") { r, c in
            let f = try FeedFilter(r, config: s.config)
            let (items, next) = try await s.feed(f)
            func options(_ values: [String], _ chosen: String?) -> [[String: Any]] { values.map { ["value": $0, "selected": $0 == chosen] } }
            return render("feed", c, title: "Message feed", nav: "navFeed", [
                "items": items.map { i -> [String: Any] in
                    var m: [String: Any] = [
                        "cursor": Int(i.cursor), "at": Self.time(i.at), "state": i.state, "endpoint": i.endpoint ?? "", "type": i.type,
                        "who": i.who ?? "", "rules": i.rules.joined(separator: ", "), "summary": i.summary,
                    ]
                    if let conv = i.conversationId { m["conversation"] = conv; m["short"] = String(conv.prefix(8)) }
                    if let p = i.parkedId { m["parkedId"] = p }
                    return m
                },
                "endpointOptions": options(s.config.endpointNames, f.endpoint), "stateOptions": options(FeedItem.states, f.state),
                "ruleOptions": options(s.config.rules.map(\.name) + s.config.retries.flatMap(\.matchNames), f.rule), "ticket": f.ticket ?? "",
                "since": f.since.map(Time.iso) ?? "", "until": f.until.map(Time.iso) ?? "", "apiQuery": f.query,
                "older": next.map { "/feed?\(f.query.isEmpty ? "" : f.query + "&")before=\($0)" } as Any,
            ])
        }
        router.post("/endpoints/try-now") { r, c in
            let who = try c.require(.operator)
            var r = r
            let form = try await Form.read(&r, context: c)
            guard let endpoint = form.first("endpoint"), !endpoint.isEmpty, let message = form.first("message"), !message.isEmpty else {
                throw ProblemError(status: .badRequest, detail: "name the endpoint and the waiting message (endpoint, message)")
            }
            _ = try await s.tryNow(endpoint: endpoint, messageId: message, who: who)
            var back = URLComponents()
            back.path = "/endpoints"
            back.queryItems = [URLQueryItem(name: "tried", value: message)]
            return Response(status: .seeOther, headers: [.location: (back.string ?? "/endpoints") + "#waiting"])
        }
        router.get("/endpoints") { r, c in
            let h = await s.health()
            let now = Date()
            var waitingError: String?
            var waiting: (items: [WaitingMessage], complete: Bool, readBack: Date?) = ([], true, nil)
            do { waiting = try await s.waitingNow(now: now) } catch { waitingError = "\(error)" }
            let rest = s.config.endpointNames.filter { s.config.endpoints[$0]?.rest != nil }
            let ms = s.history.intervalMs
            let every = ms == 60_000 ? "minute" : ms % 60_000 == 0 ? "\(ms / 60_000) min" : ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
            let charts = s.config.endpointNames.map { name -> [String: Any] in
                let samples = s.history.samples(name)
                let times = samples.map(\.at)
                let blue = "#2457c5", orange = "#b54708", green = "#067647"
                return [
                    "name": name,
                    "messages": Chart.svg(title: "Messages per \(every)", unit: "", times: times, series: [
                        .init(name: "in", color: blue, values: samples.map { $0.counted ? Double($0.received) : nil }),
                        .init(name: "out", color: orange, values: samples.map { $0.counted ? Double($0.sent) : nil }),
                    ]),
                    "depth": Chart.svg(title: "Queue depth", unit: "", times: times, series: [
                        .init(name: "sb.in", color: blue, values: samples.map { $0.inbound.map(Double.init) }),
                        .init(name: "sb.out", color: orange, values: samples.map { $0.outbound.map(Double.init) }),
                    ]),
                    "age": Chart.svg(title: "Oldest waiting", unit: " s", times: times, series: [
                        .init(name: "age", color: green, values: samples.map { $0.oldestAge ?? ($0.inbound == 0 && $0.outbound == 0 ? 0 : nil) }),
                    ]),
                    "latency": Chart.svg(title: "p95 intake to decision", unit: " ms", times: times, series: [
                        .init(name: "p95", color: blue, values: samples.map { $0.p95Ms.map(Double.init) }),
                    ]),
                ]
            }
            let firstSample = s.config.endpointNames.compactMap { s.history.samples($0).first?.at }.min()
            return render("endpoints", c, title: "Endpoints", nav: "navEndpoints", [
                "charts": charts, "chartEvery": every, "chartsSince": firstSample.map(Self.time) ?? "now (no sample yet)",
                "chartsCapped": s.history.capped,
                "hasRest": !rest.isEmpty, "waitingError": waitingError as Any, "tried": r.uri.queryParameters.get("tried").map { String($0) } as Any,
                "waitingCut": (waiting.complete ? nil : "Read back to \(waiting.readBack.map(Self.time) ?? "?") (the newest 10,000 messages): older waits are not listed.") as Any,
                "restEndpoints": rest.map { name -> [String: Any] in
                    // The longest waiting first: the front of each ticket's line before what waits behind it.
                    let items = waiting.items.filter { $0.endpoint == name }.sorted { $0.since < $1.since }
                    return [
                        "name": name, "count": items.count, "none": items.isEmpty,
                        "waiting": items.map { w -> [String: Any] in
                            [
                                "endpoint": name, "ticket": w.ticket ?? "(a create)", "conversation": w.conversationId, "short": String(w.conversationId.prefix(8)),
                                "messageId": w.messageId, "shortId": Self.shortId(w.messageId), "type": w.type, "scope": w.scope,
                                // The code where the reason does not start with it already ("429 jira-per-issue-on-write").
                                "code": (w.code == 0 || w.reason.hasPrefix(String(w.code)) ? nil : String(w.code)) as Any,
                                "reason": w.reason, "behind": w.behind.map(Self.shortId) as Any, "behindId": w.behind as Any, "since": Self.time(w.since),
                                "waited": Time.duration(now.timeIntervalSince(w.since)), "waits": w.waits,
                                "next": w.nextAttempt.map { $0 > now ? "in " + Time.duration($0.timeIntervalSince(now)) : "due" } ?? "–",
                            ]
                        },
                    ]
                },
                "at": Self.time(h.at), "brokerError": h.brokerError as Any, "ageError": h.ageError as Any, "delayedQueues": h.delayed.map(String.init) ?? "?",
                "parkedTotal": h.parkedTotal.map(String.init) ?? "?", "warnDepth": s.settings.warnDepth, "warnAge": s.settings.warnAgeSeconds,
                "endpoints": h.endpoints.map { e -> [String: Any] in
                    [
                        "name": e.name, "description": e.description, "status": e.status, "reasons": e.reasons,
                        "inbound": e.inbound.map(String.init) ?? "?", "inboundConsumers": e.inboundConsumers.map(String.init) ?? "?",
                        "outbound": e.outbound.map(String.init) ?? "?", "outboundConsumers": e.outboundConsumers.map(String.init) ?? "?",
                        "parked": e.parked, "delayed": e.delayed.map(String.init) ?? "?", "oldest": e.oldestAge.map(Time.duration) ?? "–",
                    ]
                },
            ])
        }
        router.get("/parked") { r, c in
            let group = r.uri.queryParameters.get("group")
            let after = r.uri.queryParameters.get("after").flatMap { Int64($0) } ?? 0
            let list = try await s.parkedList(group: group, after: after)
            let shown = group == nil ? Array(list.messages.prefix(200)) : list.messages
            var next = URLComponents()
            next.path = "/parked"
            next.queryItems = (group.map { [URLQueryItem(name: "group", value: $0)] } ?? []) + [URLQueryItem(name: "after", value: String(shown.last?.seq ?? 0))]
            return render("parked", c, title: "Parked messages", nav: "navParked", [
                "total": list.total, "shown": shown.count, "group": group as Any, "hasMessages": !shown.isEmpty,
                // Only when the page is full (an empty string is not false to Mustache).
                "next": (shown.count == (group == nil ? 200 : 1000) ? next.string : nil) as Any,
                "groups": list.groups.map {
                    ["reason": $0.reason, "count": $0.count, "encoded": $0.reason.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""]
                },
                "messages": shown.map {
                    ["id": $0.id, "parkedAt": $0.parkedAt, "endpoint": $0.endpoint ?? "", "ticket": $0.ticket ?? "", "stage": $0.stage,
                     "messageId": $0.messageId ?? "(none)", "reason": $0.reason, "excerpt": $0.excerptText]
                },
            ])
        }
        router.get("/parked/:id") { _, c in
            let m = try await s.parkedMessage(try c.parameters.require("id"))
            return render("parkedone", c, title: "Parked message", nav: "navParked", [
                "id": m.id, "reason": m.reason, "parkedAt": m.parkedAt, "stage": m.stage, "endpoint": m.endpoint ?? "",
                "messageId": m.messageId ?? "(none)", "exchange": m.original?.exchange ?? "?", "routingKey": m.original?.routingKey ?? "?",
                "properties": m.propertyList.map { ["name": $0.0, "value": $0.1] }, "body": m.bodyText, "ticket": m.ticket as Any,
                "truncated": (m.body.count < m.bodyBytes ? "the first \(m.body.count) of \(m.bodyBytes) bytes" : nil) as Any,
            ])
        }
        router.post("/parked/actions") { r, c in
            let who = try c.require(.operator)
            var r = r
            let form = try await Form.read(&r, context: c)
            let job = try await s.startJob(action: form.first("action"), ids: form.all("ids"), reason: form.first("reason"), identity: who)
            return Response(status: .seeOther, headers: [.location: "/parked/actions/\(job.id)"])
        }
        router.get("/parked/actions/:job") { _, c in
            guard let j = s.jobs.get(try c.parameters.require("job")) else { throw ProblemError(status: .notFound, detail: "no such job") }
            return render("job", c, title: "Parked messages", nav: "navParked", [
                "id": j.id, "action": j.action.capitalized, "total": j.total, "done": j.done, "replayed": j.replayed, "discarded": j.discarded,
                "failed": j.failed, "missing": j.missing, "state": j.state, "running": j.state == "running", "error": j.error as Any,
                "who": j.who, "reason": j.reason,
            ])
        }
        router.post("/parked/actions/:job/cancel") { _, c in
            _ = try c.require(.operator)
            let id = try c.parameters.require("job")
            guard s.jobs.cancel(id) != nil else { throw ProblemError(status: .notFound, detail: "no such job") }
            return Response(status: .seeOther, headers: [.location: "/parked/actions/\(id)"])
        }
        router.get("/config") { _, c in
            let src = s.config.source
            return render("config", c, title: "Configuration", nav: "navConfig", [
                "hash": src.contentHash, "loadedAt": Self.time(src.loadedAt), "files": src.files,
                "endpoints": s.config.endpointNames.compactMap { s.config.endpoints[$0] }.map {
                    ["name": $0.name, "description": $0.description, "ticketId": $0.ticketId.source]
                },
                "rules": s.config.rules.map {
                    [
                        "name": $0.name, "priority": $0.priority, "from": $0.from.isEmpty ? "any" : $0.from.sorted().joined(separator: ", "),
                        "types": $0.timer.map { "timer \($0)" } ?? ($0.types.isEmpty ? "any" : $0.types.sorted().joined(separator: ", ")),
                        "description": $0.description, "location": $0.location.description,
                    ]
                },
                "hasRetries": !s.config.retries.isEmpty,
                "retries": s.config.retries.map { p -> [String: Any] in
                    [
                        "name": p.name, "endpoint": p.endpoint, "types": p.types.isEmpty ? "any" : p.types.sorted().joined(separator: ", "),
                        "wait": p.wait.summary,
                        "limit": [p.attempts.map { "\($0) times" }, p.withinMs.map { "for \(Engine.format(ms: $0))" }].compactMap { $0 }.joined(separator: ", "),
                        "resend": p.resend == .same ? "the refused body" : "rebuilt from the conversation",
                        "giveUp": p.giveUp.isEmpty ? "nothing" : p.giveUp.map { "\($0.type) to \($0.to)" }.joined(separator: ", "),
                        "location": p.location.description,
                    ]
                },
            ])
        }
        router.get("/audit") { _, c in
            let records = try await s.store.audit(limit: 200, withoutConversation: false)
            return render("audit", c, title: "Audit", nav: "navAudit", [
                "records": records.map {
                    [
                        "at": Self.time($0.at), "who": $0.who, "action": $0.action, "reason": $0.reason, "messageId": $0.messageId ?? "",
                        "conversationId": $0.conversationId as Any, "detail": $0.detail,
                    ]
                },
            ])
        }
    }

    /// A message id's end (what tells one message of a conversation from another), the whole id in its title.
    static func shortId(_ id: String) -> String {
        id.count <= 24 ? id : "…" + id.suffix(20)
    }

    static func time(_ d: Date) -> String {
        Time.iso(d).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
    }

    static let signInCookie = "sb_signin"

    /// The sign-in form's token: the one of the browser's cookie when it holds one of ours, else a new one.
    static func signInToken(_ r: Request) -> (token: String, fresh: Bool) {
        if let held = r.cookies[signInCookie]?.value, held.utf8.count == 48, held.allSatisfy(\.isHexDigit) { return (held, false) }
        return (Random.token(), true)
    }

    static func signInCookie(_ token: String, maxAge: Int = 3600) -> Cookie {
        Cookie(name: signInCookie, value: token, maxAge: maxAge, path: "/sign-in", secure: true, httpOnly: true, sameSite: .strict)
    }

    static func label(_ kind: TimelineKind) -> String {
        let labels: [TimelineKind: String] = [
            .received: "received", .ruleMatched: "rule matched", .attribute: "attribute", .counter: "counter",
            .sent: "sent", .acked: "ack ok", .ackError: "error ack", .ackUnhandled: "unhandled ack", .waiting: "waiting", .echo: "echo", .noRule: "no rule matched",
            .dropped: "dropped", .delayScheduled: "timer scheduled", .timerFired: "timer fired", .linked: "linked", .warning: "warning",
            .retry: "retry", .admin("replay"): "replayed", .admin("discard"): "discarded",
        ]
        return labels[kind] ?? kind.rawValue
    }

    static func model(_ r: ConversationRecord) -> [String: Any] {
        let s = r.snapshot
        return [
            "id": s.id, "version": s.version, "createdAt": time(r.createdAt), "updatedAt": time(r.updatedAt),
            "tickets": s.references.sorted { $0.key < $1.key }.map { ["endpoint": $0.key, "ticketId": $0.value] },
            "attributes": s.shownAttributes.sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value.serializedString] },
            "counters": s.shownCounters.sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] },
            "entries": ConversationView.entries(r).map { v -> [String: Any] in
                let e = v.entry
                var m: [String: Any] = [
                    "at": time(e.at), "kind": e.kind.rawValue, "label": label(e.kind), "endpoint": e.endpoint ?? "", "who": e.who ?? "",
                    "rule": e.rule ?? "", "detail": e.detail,
                ]
                if let hop = v.hop { m["hop"] = Time.duration(hop) }
                if let ms = e.sinceIntakeMs { m["decided"] = Time.duration(Double(ms) / 1000) }
                if e.kind == .noRule, let body = e.body, case .array(let misses)? = try? JSON.parse(body) {
                    m["why"] = true
                    m["misses"] = misses.map { ["rule": $0["rule"]?.stringValue ?? "", "reason": $0["reason"]?.stringValue ?? ""] }
                } else if let body = e.body {
                    m["body"] = Pretty.body(body) ?? body
                } else if let o = v.outbound {
                    m["body"] = Pretty.body(String(decoding: o.outbound.body, as: UTF8.self)) ?? ""
                }
                if let f = v.outbound?.failure { m["failure"] = f }
                return m
            },
        ]
    }
}

