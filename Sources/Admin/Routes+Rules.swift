import Foundation
import Hummingbird
import JSONPath
import Roles
import Rules
import Store

/// The rules tools in the admin: "What if" (`switchboard rules try`: what one message would do, against a
/// stored conversation's state, sending and storing nothing) and capturing a conversation as a rule test
/// (`switchboard rules capture`).
extension PageRoutes {
    func addRules(to router: Router<AdminContext>) {
        router.get("/whatif") { r, c in
            _ = try c.require(.operator)
            return whatIf(c, conversation: r.uri.queryParameters.get("conversation") ?? "", endpoint: "", type: "", message: "")
        }
        // A POST (operator, with the form token the middleware checks) although nothing changes: the message
        // may be large and may hold ticket contents, which do not belong in a URL or a proxy's log.
        router.post("/whatif") { r, c in
            _ = try c.require(.operator)
            var r = r
            let form = try await Form.read(&r, context: c)
            let conversation = (form.first("conversation") ?? "").trimmingCharacters(in: .whitespaces)
            let endpoint = form.first("endpoint") ?? ""
            let type = (form.first("type") ?? "").trimmingCharacters(in: .whitespaces)
            let message = form.first("message") ?? ""
            var lines: [String]
            let body: JSON
            do {
                body = try JSON.parse(Data(message.utf8))
                let engine = Engine(config: s.config)
                if let from = endpoint.isEmpty ? engine.guessEndpoint(of: body) : endpoint {
                    var snapshot = ConversationSnapshot(id: "(new)")
                    if !conversation.isEmpty { snapshot = try await s.conversation(conversation).snapshot }
                    let snap = snapshot
                    // The engine's work is bounded (`RegexBudget`), yet it is not an event loop's to do.
                    lines = await Offload.run { engine.trace(endpoint: from, type: type.isEmpty ? nil : type, body: body, conversation: snap, now: Date()) }
                } else {
                    lines = ["Choose the endpoint the message comes from: not exactly one endpoint's ticket_id finds a value in it."]
                }
            } catch let e as ProblemError {
                lines = [e.detail]
            } catch {
                lines = ["The message is not JSON: \(error)"]
            }
            return whatIf(c, conversation: conversation, endpoint: endpoint, type: type, message: message, trace: lines)
        }
        router.get("/conversations/:id/capture") { _, c in
            let id = try c.parameters.require("id")
            let r = try await s.conversation(id)
            let text: String
            do {
                text = try Capture.test(
                    name: "captured \(id)", timeline: r.timeline, sentBodies: r.outbound.mapValues(\.outbound.body),
                    personal: s.config.endpoints.mapValues(\.personal))
            } catch {
                throw ProblemError(status: .conflict, detail: "conversation \(id) cannot be captured: \(error)")
            }
            let file = "captured-\(id.prefix(12))_test.yaml"
            return Response(
                status: .ok,
                headers: [.contentType: "application/yaml; charset=utf-8", .contentDisposition: "attachment; filename=\"\(file)\""],
                body: .init(byteBuffer: .init(string: text)))
        }
    }

    private func whatIf(_ c: AdminContext, conversation: String, endpoint: String, type: String, message: String, trace: [String]? = nil) -> Response {
        render("whatif", c, title: "What if", nav: "navWhatIf", [
            "conversation": conversation, "type": type, "message": message,
            "endpointOptions": s.config.endpointNames.map { ["value": $0, "selected": $0 == endpoint] },
            "trace": trace.map { $0.joined(separator: "\n") } as Any,
        ])
    }
}
