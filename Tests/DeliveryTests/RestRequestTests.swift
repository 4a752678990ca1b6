import AMQP
import Foundation
import JSONPath
import NIOHTTP1
import Testing

@testable import Delivery
@testable import Rules

/// What a REST endpoint's outbound message becomes (method, URL, body per profile) and what its answer
/// becomes (the ack the rules see), without a network.
@Suite struct RestRequestTests {
    func target(_ profile: RestSettings.Profile) -> RestDeliveryHandler.Target {
        var rest = RestSettings(profile: profile, baseURL: "https://x.example", auth: .bearer(.env("T")), location: SourceLocation(file: "t", line: 1))
        rest.createPath = "/tickets"
        rest.updatePath = "/tickets/{ref}"
        return RestDeliveryHandler.Target(name: "t", rest: rest, authorization: "Bearer x")
    }

    func message(_ body: String, type: String = "update") -> Message {
        Message(body: Data(body.utf8), properties: Properties(messageId: "m1", type: type))
    }

    @Test func serviceNowCreatesWithoutASysIdAndPatchesWithOne() {
        let create = RestDeliveryHandler.request(for: message(#"{"short_description":"x"}"#), target: target(.servicenowTable))
        #expect(create.operation == "create" && create.method == .POST && create.url == "https://x.example/api/now/table/incident")
        let update = RestDeliveryHandler.request(for: message(#"{"sys_id":"abc 1","state":"2"}"#), target: target(.servicenowTable))
        #expect(update.operation == "update" && update.method == .PATCH && update.url == "https://x.example/api/now/table/incident/abc%201")
    }

    @Test func jiraUpdatesByKeyWithoutItInTheBodyAndWrapsCommentsInADF() throws {
        let update = RestDeliveryHandler.request(for: message(#"{"key":"VX-1","fields":{"summary":"s"}}"#), target: target(.jiraCloud))
        #expect(update.method == .PUT && update.url == "https://x.example/rest/api/3/issue/VX-1")
        let edit = try JSON.parse(update.body)
        #expect(edit["fields"] == JSON.object(["summary": .string("s")]) && edit["key"] == nil)
        // Stamped as ours: the history names Switchboard, the entity property the message.
        #expect(edit["historyMetadata"]?["generator"]?["id"] == .string("switchboard"))
        #expect(edit["historyMetadata"]?["cause"]?["id"] == .string("m1"))
        func property(_ body: JSON) -> JSON? {
            guard case .array(let properties)? = body["properties"] else { return nil }
            return properties.first
        }
        #expect(property(edit)?["value"]?["message_id"] == .string("m1"))
        let create = try JSON.parse(RestDeliveryHandler.request(for: message(#"{"fields":{"summary":"s"}}"#), target: target(.jiraCloud)).body)
        #expect(property(create)?["key"] == .string("switchboard") && create["historyMetadata"] == nil)
        // A create carries its conversation's label (how an unknown outcome is looked up); the rules' own stay.
        var props = Properties(messageId: "m2", type: "create", headers: ["x-sb-conversation": .string("0123abcd")])
        props.persistent = true
        let labelled = RestDeliveryHandler.request(
            for: Message(body: Data(#"{"fields":{"summary":"s","labels":["mine"]}}"#.utf8), properties: props), target: target(.jiraCloud))
        #expect(try JSON.parse(labelled.body)["fields"]?["labels"] == .array([.string("mine"), .string("sb-0123abcd")]))
        #expect(RestDeliveryHandler.correlation(Message(body: Data(), properties: props), target: target(.jiraCloud)) == "sb-0123abcd")
        // A transition is taken out of the edit; alone, nothing is edited.
        let moving = RestDeliveryHandler.request(for: message(#"{"key":"VX-1","transition":"Done","fields":{"summary":"s"}}"#), target: target(.jiraCloud))
        let edited = try JSON.parse(moving.body)
        #expect(moving.transition == "Done" && !moving.editless && edited["transition"] == nil)
        let only = RestDeliveryHandler.request(for: message(#"{"key":"VX-1","transition":"Done"}"#), target: target(.jiraCloud))
        #expect(only.transition == "Done" && only.editless)
        let comment = RestDeliveryHandler.request(for: message(#"{"key":"VX-1","body":"line 1\nline 2"}"#, type: "comment"), target: target(.jiraCloud))
        #expect(comment.method == .POST && comment.url == "https://x.example/rest/api/3/issue/VX-1/comment")
        let adf = try JSON.parse(comment.body)
        #expect(adf["body"]?["type"] == .string("doc"))
        guard case .array(let paragraphs)? = adf["body"]?["content"], paragraphs.count == 2,
            case .array(let runs)? = paragraphs[1]["content"], let run = runs.first
        else {
            Issue.record("not two paragraphs: \(adf)")
            return
        }
        #expect(run["text"] == .string("line 2"))
    }

    @Test func genericRestUsesItsPaths() {
        let update = RestDeliveryHandler.request(for: message(#"{"id":7}"#), target: target(.genericRest))
        #expect(update.method == .PATCH && update.url == "https://x.example/tickets/7")
        let create = RestDeliveryHandler.request(for: message(#"{"title":"t"}"#), target: target(.genericRest))
        #expect(create.method == .POST && create.url == "https://x.example/tickets")
    }

    @Test func genericRestLooksACreateUpByItsLookupPathPercentEncoded() {
        #expect(RestDeliveryHandler.lookupURL("/tickets?external_id={correlation}&limit=1", correlation: "sb 1&x=ü", target: target(.genericRest))
            == "https://x.example/tickets?external_id=sb%201%26x%3D%C3%BC&limit=1")
    }

    @Test func aCommentMadeNamesItsIdInTheAck() {
        let comment = RestDeliveryHandler.Request(operation: "comment", ticket: "VX-1", method: .POST, url: "u", body: Data())
        let made = RestDeliveryHandler.ack(.init(code: 201, headers: [:], body: Data(#"{"id":"10050","body":{}}"#.utf8), failure: nil), request: comment, target: target(.jiraCloud))
        #expect(made["comment_id"] == .string("10050") && made["status"] == .string("ok"))
        let refused = RestDeliveryHandler.ack(.init(code: 400, headers: [:], body: Data(#"{"id":"1"}"#.utf8), failure: nil), request: comment, target: target(.jiraCloud))
        #expect(refused["comment_id"] == nil)
        let update = RestDeliveryHandler.Request(operation: "update", ticket: "VX-1", method: .PUT, url: "u", body: Data())
        #expect(RestDeliveryHandler.ack(.init(code: 200, headers: [:], body: Data(#"{"id":"1"}"#.utf8), failure: nil), request: update, target: target(.jiraCloud))["comment_id"] == nil)
    }

    @Test func anEndpointSaysWhichOf401403And409AreWorthRetryingAndWhatSuccessLooksLike() throws {
        var t = target(.genericRest)
        var rest = t.rest
        rest.retryCodes = [409]
        rest.success = (try JSONPath("$.result.status"), JSON.string("done"))
        t = RestDeliveryHandler.Target(name: "t", rest: rest, authorization: "Bearer x")
        let update = RestDeliveryHandler.Request(operation: "update", ticket: "7", method: .PATCH, url: "u", body: Data())
        func ack(_ code: Int, _ body: String = "") -> JSON {
            RestDeliveryHandler.ack(.init(code: code, headers: [:], body: Data(body.utf8), failure: nil), request: update, target: t)
        }
        #expect(ack(409)["retryable"] == .bool(true) && ack(403)["retryable"] == .bool(false))
        #expect(ack(409)["retryable"] != RestDeliveryHandler.ack(.init(code: 409, headers: [:], body: Data(), failure: nil), request: update, target: target(.genericRest))["retryable"])
        #expect(ack(200, #"{"result":{"status":"done"}}"#)["status"] == .string("ok"))
        let unmet = ack(200, #"{"result":{"status":"rejected"}}"#)
        #expect(unmet["status"] == .string("error") && unmet["retryable"] == .bool(false))
        #expect(unmet["message"]?.scalarText?.contains("success condition ($.result.status)") == true)
    }

    @Test func answersBecomeAcks() throws {
        let create = RestDeliveryHandler.Request(operation: "create", method: .POST, url: "u", body: Data())
        let created = RestDeliveryHandler.ack(
            .init(code: 201, headers: [:], body: Data(#"{"result":{"sys_id":"s1","number":"INC1"}}"#.utf8), failure: nil),
            request: create, target: target(.servicenowTable))
        #expect(created["status"] == .string("ok") && created["key"] == .string("s1") && created["retryable"] == .bool(false))
        let locked = RestDeliveryHandler.ack(
            .init(code: 403, headers: [:], body: Data(#"{"error":{"message":"aborted by Business Rule 'lock'","detail":"d"}}"#.utf8), failure: nil),
            request: create, target: target(.servicenowTable))
        #expect(locked["status"] == .string("error") && locked["retryable"] == .bool(false) && locked["key"] == nil)
        #expect(locked["message"] == .string("aborted by Business Rule 'lock': d"))
        var headers = HTTPHeaders()
        headers.add(name: "Retry-After", value: "30")
        headers.add(name: "RateLimit-Reason", value: "jira-per-issue-on-write")
        let limited = RestDeliveryHandler.ack(
            .init(code: 429, headers: headers, body: Data(#"{"errorMessages":["Rate limit exceeded."]}"#.utf8), failure: nil),
            request: create, target: target(.jiraCloud))
        #expect(limited["retryable"] == .bool(true) && limited["retry_after"] == JSON.number(JSONNumber(30)))
        #expect(limited["headers"]?["ratelimit-reason"] == .string("jira-per-issue-on-write"))
        #expect(limited["message"] == .string("Rate limit exceeded."))
        let unreachable = RestDeliveryHandler.ack(.init(code: 0, headers: [:], body: Data(), failure: "connection refused"), request: create, target: target(.jiraCloud))
        #expect(unreachable["retryable"] == .bool(true) && unreachable["code"] == JSON.number(JSONNumber(0)))
    }

    @Test func retryAfterInEachForm() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func after(_ name: String, _ value: String) -> Int? {
            var h = HTTPHeaders()
            h.add(name: name, value: value)
            return RestDeliveryHandler.retryAfter(h, now: now)
        }
        #expect(after("Retry-After", "120") == 120)
        #expect(after("Retry-After", "Fri, 15 Jan 2027 08:00:30 GMT") == Int(Date(timeIntervalSince1970: 1_800_000_000 + 0).distance(to: ISO8601DateFormatter().date(from: "2027-01-15T08:00:30Z")!).rounded(.up)))
        #expect(after("X-RateLimit-Reset", "1800000045") == 45)
        #expect(after("X-RateLimit-Reset", "2027-01-15T08:01:00Z") == Int(Date(timeIntervalSince1970: 1_800_000_000).distance(to: ISO8601DateFormatter().date(from: "2027-01-15T08:01:00Z")!).rounded(.up)))
        #expect(after("Retry-After", "9999999") == 86_400)
        #expect(after("Retry-After", "soon") == nil)
    }
}
