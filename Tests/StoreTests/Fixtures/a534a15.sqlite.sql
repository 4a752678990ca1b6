PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
INSERT INTO grdb_migrations VALUES('v1');
INSERT INTO grdb_migrations VALUES('v2: attributes, counters, delays');
INSERT INTO grdb_migrations VALUES('v3: members');
INSERT INTO grdb_migrations VALUES('v4: the attempt that applied a message');
INSERT INTO grdb_migrations VALUES('v5: one timeline row per commit');
INSERT INTO grdb_migrations VALUES('v6: failed outbound messages');
INSERT INTO grdb_migrations VALUES('v7: what a processed message said');
INSERT INTO grdb_migrations VALUES('v8: what administrators did');
INSERT INTO grdb_migrations VALUES('v9: delayed outbound messages, for endpoint health');
INSERT INTO grdb_migrations VALUES('v10: a timeline row''s body in a column of its own');
CREATE TABLE conversation (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO conversation VALUES('bb9100e66223484ead218dfde6e7993e',5,1796544805.6800546645,1796544806.0877327919);
INSERT INTO conversation VALUES('5a6cc69e2e074455b61e9301137e5319',5,1796544806.0908169747,1796544806.5015525817);
CREATE TABLE reference (
    endpoint TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversation(id),
    created_at REAL NOT NULL,
    PRIMARY KEY (endpoint, ticket_id)
);
INSERT INTO reference VALUES('customer-a','INC0000001','bb9100e66223484ead218dfde6e7993e',1796544805.6800546645);
INSERT INTO reference VALUES('vendor-x','VX-1','bb9100e66223484ead218dfde6e7993e',1796544805.7328476905);
INSERT INTO reference VALUES('customer-a','INC0000002','5a6cc69e2e074455b61e9301137e5319',1796544806.0908169747);
INSERT INTO reference VALUES('vendor-x','VX-2','5a6cc69e2e074455b61e9301137e5319',1796544806.1437940597);
CREATE TABLE processed (
    endpoint TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    processed_at REAL NOT NULL, attempt TEXT NOT NULL DEFAULT '', digest TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (endpoint, message_id)
);
INSERT INTO processed VALUES('customer-a','INC0000001-1','bb9100e66223484ead218dfde6e7993e',1796544805.6800546645,'A07EFE82-AA61-4526-940D-76AB81BB6941-0','12d5438c9ff9b620');
INSERT INTO processed VALUES('customer-a','INC0000001-2','bb9100e66223484ead218dfde6e7993e',1796544805.682644844,'B9834C59-6CF7-4F7F-BE13-FF8E438C79C5-0','e371969722b8c2ff');
INSERT INTO processed VALUES('vendor-x','VX-1-ack-1','bb9100e66223484ead218dfde6e7993e',1796544805.7328476905,'54D6E4FE-DDF2-4D6D-B9E1-ABB0275B60A2-0','57c1685eef99af16');
INSERT INTO processed VALUES('customer-a','INC0000001-3','bb9100e66223484ead218dfde6e7993e',1796544806.0353016853,'B24AF6FE-405E-4F26-A657-B55C87258822-0','1bf35b13d56ce6cf');
INSERT INTO processed VALUES('vendor-x','VX-1-ack-2','bb9100e66223484ead218dfde6e7993e',1796544806.0877327919,'B57867CF-1531-4C60-BAF2-0FF2B53D2934-0','149a92170deeceb0');
INSERT INTO processed VALUES('customer-a','INC0000002-1','5a6cc69e2e074455b61e9301137e5319',1796544806.0908169747,'259F22D1-44C2-42CC-900E-2D82EA91760E-0','da1590caccb61084');
INSERT INTO processed VALUES('customer-a','INC0000002-2','5a6cc69e2e074455b61e9301137e5319',1796544806.0909073352,'259F22D1-44C2-42CC-900E-2D82EA91760E-1','524b8cfa641f6465');
INSERT INTO processed VALUES('vendor-x','VX-2-ack-1','5a6cc69e2e074455b61e9301137e5319',1796544806.1437940597,'40D57B4F-080C-4122-91E7-5C23677111FA-0','0a760d7e83271129');
INSERT INTO processed VALUES('customer-a','INC0000002-3','5a6cc69e2e074455b61e9301137e5319',1796544806.4475150108,'D7576557-1767-48E0-8F88-A5006B38B2E2-0','6050ba91ac93492f');
INSERT INTO processed VALUES('vendor-x','VX-2-ack-2','5a6cc69e2e074455b61e9301137e5319',1796544806.5015525817,'63F20231-1830-435A-9074-75B64BF4C91D-0','e3880bc77a2fffdc');
CREATE TABLE outbox (
    message_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    inbound_endpoint TEXT NOT NULL,
    inbound_message_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    target TEXT NOT NULL,
    type TEXT NOT NULL,
    rule TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL
, delay_ms INTEGER NOT NULL DEFAULT 0, kind TEXT NOT NULL DEFAULT 'message', failed_at REAL, failure TEXT);
INSERT INTO outbox VALUES('sb-bb9100e66223484ead218dfde6e7993e-c5f3ffe12d807aba-4d0a62c34f382a0e-0','bb9100e66223484ead218dfde6e7993e','customer-a','INC0000001-2',0,'vendor-x','create','create-at-vendor',X'7b22637573746f6d65725f7265666572656e6365223a22494e4330303030303031222c226669656c6473223a7b226465736372697074696f6e223a224e6f7468696e6720776f726b73222c227072696f72697479223a7b226e616d65223a2248696768227d2c2273756d6d617279223a22494e43303030303030313a2053415020646f776e227d2c226f7065726174696f6e223a22637265617465227d',1796544805.682644844,0,'message',NULL,NULL);
INSERT INTO outbox VALUES('sb-bb9100e66223484ead218dfde6e7993e-c5f3ffe12d807aba-4d0a62c34e382a0e-0','bb9100e66223484ead218dfde6e7993e','customer-a','INC0000001-3',0,'vendor-x','update','update-at-vendor',X'7b22637573746f6d65725f7265666572656e6365223a22494e4330303030303031222c226669656c6473223a7b226465736372697074696f6e223a224e6f7468696e6720776f726b73222c227072696f72697479223a7b226e616d65223a2248696768657374227d2c2273756d6d617279223a22494e43303030303030313a2053415020646f776e227d2c226b6579223a2256582d31222c226f7065726174696f6e223a22757064617465227d',1796544806.0353016853,0,'message',NULL,NULL);
INSERT INTO outbox VALUES('sb-bb9100e66223484ead218dfde6e7993e-c5f3ffe12d807aba-0ca84a0e7df18e25-t0','bb9100e66223484ead218dfde6e7993e','vendor-x','VX-1-ack-2',0,'switchboard','vendor-lock-retry','vendor-locked-retry',X'7b22636f6e766572736174696f6e223a226262393130306536363232333438346561643231386466646536653739393365222c2274696d6572223a2276656e646f722d6c6f636b2d7265747279227d',1796544806.0877327919,60000,'timer',NULL,NULL);
INSERT INTO outbox VALUES('sb-5a6cc69e2e074455b61e9301137e5319-c5f3fee12d807907-4d0a5e1fa4382a0e-0','5a6cc69e2e074455b61e9301137e5319','customer-a','INC0000002-2',0,'vendor-x','create','create-at-vendor',X'7b22637573746f6d65725f7265666572656e6365223a22494e4330303030303032222c226669656c6473223a7b226465736372697074696f6e223a224e6f7468696e6720776f726b73222c227072696f72697479223a7b226e616d65223a2248696768227d2c2273756d6d617279223a22494e43303030303030323a2053415020646f776e227d2c226f7065726174696f6e223a22637265617465227d',1796544806.0909073352,0,'message',NULL,NULL);
INSERT INTO outbox VALUES('sb-5a6cc69e2e074455b61e9301137e5319-c5f3fee12d807907-4d0a5e1fa5382a0e-0','5a6cc69e2e074455b61e9301137e5319','customer-a','INC0000002-3',0,'vendor-x','update','update-at-vendor',X'7b22637573746f6d65725f7265666572656e6365223a22494e4330303030303032222c226669656c6473223a7b226465736372697074696f6e223a224e6f7468696e6720776f726b73222c227072696f72697479223a7b226e616d65223a2248696768657374227d2c2273756d6d617279223a22494e43303030303030323a2053415020646f776e227d2c226b6579223a2256582d32222c226f7065726174696f6e223a22757064617465227d',1796544806.4475150108,0,'message',NULL,NULL);
INSERT INTO outbox VALUES('sb-5a6cc69e2e074455b61e9301137e5319-c5f3fee12d807907-e41ed439c6f18e25-t0','5a6cc69e2e074455b61e9301137e5319','vendor-x','VX-2-ack-2',0,'switchboard','vendor-lock-retry','vendor-locked-retry',X'7b22636f6e766572736174696f6e223a223561366363363965326530373434353562363165393330313133376535333139222c2274696d6572223a2276656e646f722d6c6f636b2d7265747279227d',1796544806.5015525817,60000,'timer',NULL,NULL);
CREATE TABLE timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    endpoint TEXT,
    who TEXT,
    message_id TEXT,
    rule TEXT,
    detail TEXT NOT NULL
);
CREATE TABLE attribute (
    conversation_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, name)
);
INSERT INTO attribute VALUES('bb9100e66223484ead218dfde6e7993e','original_group','{"display_value":"Local Service Desk","value":"g-local"}',1796544805.6800546645);
INSERT INTO attribute VALUES('bb9100e66223484ead218dfde6e7993e','vendor_fields','{"description":"Nothing works","priority":{"name":"Highest"},"summary":"INC0000001: SAP down"}',1796544806.0353016853);
INSERT INTO attribute VALUES('5a6cc69e2e074455b61e9301137e5319','original_group','{"display_value":"Local Service Desk","value":"g-local"}',1796544806.0908169747);
INSERT INTO attribute VALUES('5a6cc69e2e074455b61e9301137e5319','vendor_fields','{"description":"Nothing works","priority":{"name":"Highest"},"summary":"INC0000002: SAP down"}',1796544806.4475150108);
CREATE TABLE counter (
    conversation_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, name)
);
INSERT INTO counter VALUES('bb9100e66223484ead218dfde6e7993e','lock_retries',1,1796544806.0877327919);
INSERT INTO counter VALUES('5a6cc69e2e074455b61e9301137e5319','lock_retries',1,1796544806.5015525817);
CREATE TABLE member (id TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE timeline_entries (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    entries TEXT NOT NULL
, body TEXT);
INSERT INTO timeline_entries VALUES(1,'bb9100e66223484ead218dfde6e7993e','[{"at":1796544805.6800547,"kind":"received","detail":"update of customer-a/INC0000001","endpoint":"customer-a","who":"alice","message_id":"INC0000001-1","body_column":true,"since_intake_ms":3},{"at":1796544805.6800547,"kind":"rule-matched","detail":"rule ''remember-origin'' matched","endpoint":"customer-a","message_id":"INC0000001-1","rule":"remember-origin"},{"at":1796544805.6800547,"kind":"attribute","detail":"original_group: (none) -> {\"display_value\":\"Local Service Desk\",\"value\":\"g-local\"}","endpoint":"customer-a","message_id":"INC0000001-1","rule":"remember-origin"}]','{"number": "INC0000001", "sys_id": "e5cbbf14e5c848a4b5135e4414a177db", "short_description": "SAP down", "description": "Nothing works", "priority": "2", "state": "2", "assignment_group": {"value": "g-local", "display_value": "Local Service Desk"}, "sys_updated_by": "alice"}');
INSERT INTO timeline_entries VALUES(2,'bb9100e66223484ead218dfde6e7993e','[{"at":1796544805.6826448,"kind":"received","detail":"update of customer-a/INC0000001","endpoint":"customer-a","who":"alice","message_id":"INC0000001-2","body_column":true,"since_intake_ms":1},{"at":1796544805.6826448,"kind":"rule-matched","detail":"rule ''remember-origin'' matched","endpoint":"customer-a","message_id":"INC0000001-2","rule":"remember-origin"},{"at":1796544805.6826448,"kind":"rule-matched","detail":"rule ''create-at-vendor'' matched","endpoint":"customer-a","message_id":"INC0000001-2","rule":"create-at-vendor"},{"at":1796544805.6826448,"kind":"sent","detail":"create to vendor-x: {\"customer_reference\":\"INC0000001\",\"fields\":{\"description\":\"Nothing works\",\"priority\":{\"name\":\"High\"},\"summary\":\"INC0000001: SAP down\"},\"operation\":\"create\"}","endpoint":"vendor-x","message_id":"sb-bb9100e66223484ead218dfde6e7993e-c5f3ffe12d807aba-4d0a62c34f382a0e-0","rule":"create-at-vendor"}]','{"number": "INC0000001", "sys_id": "5f752e2efd0b4a65b5f48e9a29b958c3", "short_description": "SAP down", "description": "Nothing works", "priority": "2", "state": "2", "assignment_group": {"value": "g-sap", "display_value": "SAP Support"}, "sys_updated_by": "alice"}');
INSERT INTO timeline_entries VALUES(3,'bb9100e66223484ead218dfde6e7993e','[{"at":1796544805.7328477,"kind":"acked","detail":"ok ack of create sb-bb9100e66223484ead218dfde6e7993e-c5f3ffe12d807aba-4d0a62c34f382a0e-0 to vendor-x","endpoint":"vendor-x","message_id":"VX-1-ack-1","body_column":true},{"at":1796544805.7328477,"kind":"linked","detail":"linked vendor-x/VX-1","endpoint":"vendor-x","message_id":"VX-1-ack-1"},{"at":1796544805.7328477,"kind":"no-rule","detail":"no rule matched ack from vendor-x","endpoint":"vendor-x","message_id":"VX-1-ack-1","body":"[{\"reason\":\"acks match only rules with type: ack\",\"rule\":\"ignore-vendor-worklogs\"},{\"reason\":\"from customer-a; this message is from vendor-x\",\"rule\":\"remember-origin\"},{\"reason\":\"condition 1 is false: field $.status equals \\\"error\\\"; the value is \\\"ok\\\"\",\"rule\":\"vendor-locked-retry\"},{\"reason\":\"condition 1 is false: field $.status equals \\\"error\\\"; the value is \\\"ok\\\"\",\"rule\":\"vendor-locked-give-up\"},{\"reason\":\"condition 1 is false: field $.status equals \\\"error\\\"; the value is \\\"ok\\\"\",\"rule\":\"vendor-locked-comment-retry\"},{\"reason\":\"condition 1 is false: field $.status equals \\\"error\\\"; the value is \\\"ok\\\"\",\"rule\":\"vendor-locked-comment-give-up\"},{\"reason\":\"condition 2 is false: meta acked_type equals \\\"update\\\"; the value is \\\"create\\\"\",\"rule\":\"vendor-ack-ok\"},{\"reason\":\"condition 2 is false: meta acked_type equals \\\"comment\\\"; the value is \\\"create\\\"\",\"rule\":\"vendor-comment-ack-ok\"},{\"reason\":\"acks match only rules with type: ack\",\"rule\":\"hand-back-to-customer\"},{\"reason\":\"from customer-a; this message is from vendor-x\",\"rule\":\"create-at-vendor\"},{\"reason\":\"from customer-a; this message is from vendor-x\",\"rule\":\"update-at-vendor\"},{\"reason\":\"from customer-a; this message is from vendor-x\",\"rule\":\"comment-at-vendor\"},{\"reason\":\"listens to timer ''vendor-lock-retry'' only\",\"rule\":\"retry-locked-update\"},{\"reason\":\"listens to timer ''vendor-comment-lock-retry'' only\",\"rule\":\"retry-locked-comment\"},{\"reason\":\"acks match only rules with type: ack\",\"rule\":\"vendor-update-to-customer\"}]"}]','{"status": "ok", "key": "VX-1"}');
INSERT INTO timeline_entries VALUES(4,'bb9100e66223484ead218dfde6e7993e','[{"at":1796544806.0353017,"kind":"received","detail":"update of customer-a/INC0000001","endpoint":"customer-a","who":"bob","message_id":"INC0000001-3","body_column":true,"since_intake_ms":0},{"at":1796544806.0353017,"kind":"rule-matched","detail":"rule ''remember-origin'' matched","endpoint":"customer-a","message_id":"INC0000001-3","rule":"remember-origin"},{"at":1796544806.0353017,"kind":"rule-matched","detail":"rule ''update-at-vendor'' matched","endpoint":"customer-a","message_id":"INC0000001-3","rule":"update-at-vendor"},{"at":1796544806.0353017,"kind":"attribute","detail":"vendor_fields: (none) -> {\"description\":\"Nothing works\",\"priority\":{\"name\":\"Highest\"},\"summary\":\"INC0000001: SAP down\"}","endpoint":"customer-a","message_id":"INC0000001-3","rule":"update-at-vendor"},{"at":1796544806.0353017,"kind":"sent","detail":"update to vendor-x: {\"customer_reference\":\"INC0000001\",\"fields\":{\"description\":\"Nothing works\",\"priority\":{\"name\":\"Highest\"},\"summary\":\"INC0000001: SAP down\"},\"key\":\"VX-1\",\"operation\":\"update\"}","endpoint":"vendor-x","message_id":"sb-bb9100e66223484ead218dfde6e7993e-c5f3ffe12d807aba-4d0a62c34e382a0e-0","rule":"update-at-vendor"}]','{"number": "INC0000001", "sys_id": "ef60144bf2c24db6bbbaeaf0ca4e35fe", "short_description": "SAP down", "description": "Nothing works", "priority": "1", "state": "2", "assignment_group": {"value": "g-sap", "display_value": "SAP Support"}, "sys_updated_by": "bob"}');
INSERT INTO timeline_entries VALUES(5,'bb9100e66223484ead218dfde6e7993e','[{"at":1796544806.0877328,"kind":"ack-error","detail":"error ack of update sb-bb9100e66223484ead218dfde6e7993e-c5f3ffe12d807aba-4d0a62c34e382a0e-0 to vendor-x: open in another session","endpoint":"vendor-x","message_id":"VX-1-ack-2","body_column":true},{"at":1796544806.0877328,"kind":"rule-matched","detail":"rule ''vendor-locked-retry'' matched","endpoint":"vendor-x","message_id":"VX-1-ack-2","rule":"vendor-locked-retry"},{"at":1796544806.0877328,"kind":"counter","detail":"lock_retries: 0 -> 1","endpoint":"vendor-x","message_id":"VX-1-ack-2","rule":"vendor-locked-retry"},{"at":1796544806.0877328,"kind":"delay-scheduled","detail":"timer ''vendor-lock-retry'' in 1m","endpoint":"vendor-x","message_id":"VX-1-ack-2","rule":"vendor-locked-retry"}]','{"status": "error", "code": "LOCKED", "message": "open in another session"}');
INSERT INTO timeline_entries VALUES(6,'5a6cc69e2e074455b61e9301137e5319','[{"at":1796544806.090817,"kind":"received","detail":"update of customer-a/INC0000002","endpoint":"customer-a","who":"alice","message_id":"INC0000002-1","body_column":true,"since_intake_ms":1},{"at":1796544806.090817,"kind":"rule-matched","detail":"rule ''remember-origin'' matched","endpoint":"customer-a","message_id":"INC0000002-1","rule":"remember-origin"},{"at":1796544806.090817,"kind":"attribute","detail":"original_group: (none) -> {\"display_value\":\"Local Service Desk\",\"value\":\"g-local\"}","endpoint":"customer-a","message_id":"INC0000002-1","rule":"remember-origin"}]','{"number": "INC0000002", "sys_id": "1bdf59c6e4fb4a8188e358d107f2c659", "short_description": "SAP down", "description": "Nothing works", "priority": "2", "state": "2", "assignment_group": {"value": "g-local", "display_value": "Local Service Desk"}, "sys_updated_by": "alice"}');
INSERT INTO timeline_entries VALUES(7,'5a6cc69e2e074455b61e9301137e5319','[{"at":1796544806.0909073,"kind":"received","detail":"update of customer-a/INC0000002","endpoint":"customer-a","who":"alice","message_id":"INC0000002-2","body_column":true,"since_intake_ms":1},{"at":1796544806.0909073,"kind":"rule-matched","detail":"rule ''remember-origin'' matched","endpoint":"customer-a","message_id":"INC0000002-2","rule":"remember-origin"},{"at":1796544806.0909073,"kind":"rule-matched","detail":"rule ''create-at-vendor'' matched","endpoint":"customer-a","message_id":"INC0000002-2","rule":"create-at-vendor"},{"at":1796544806.0909073,"kind":"sent","detail":"create to vendor-x: {\"customer_reference\":\"INC0000002\",\"fields\":{\"description\":\"Nothing works\",\"priority\":{\"name\":\"High\"},\"summary\":\"INC0000002: SAP down\"},\"operation\":\"create\"}","endpoint":"vendor-x","message_id":"sb-5a6cc69e2e074455b61e9301137e5319-c5f3fee12d807907-4d0a5e1fa4382a0e-0","rule":"create-at-vendor"}]','{"number": "INC0000002", "sys_id": "1edf4b52bf194fe0a79fcbce0650a449", "short_description": "SAP down", "description": "Nothing works", "priority": "2", "state": "2", "assignment_group": {"value": "g-sap", "display_value": "SAP Support"}, "sys_updated_by": "alice"}');
INSERT INTO timeline_entries VALUES(8,'5a6cc69e2e074455b61e9301137e5319','[{"at":1796544806.143794,"kind":"acked","detail":"ok ack of create sb-5a6cc69e2e074455b61e9301137e5319-c5f3fee12d807907-4d0a5e1fa4382a0e-0 to vendor-x","endpoint":"vendor-x","message_id":"VX-2-ack-1","body_column":true},{"at":1796544806.143794,"kind":"linked","detail":"linked vendor-x/VX-2","endpoint":"vendor-x","message_id":"VX-2-ack-1"},{"at":1796544806.143794,"kind":"no-rule","detail":"no rule matched ack from vendor-x","endpoint":"vendor-x","message_id":"VX-2-ack-1","body":"[{\"reason\":\"acks match only rules with type: ack\",\"rule\":\"ignore-vendor-worklogs\"},{\"reason\":\"from customer-a; this message is from vendor-x\",\"rule\":\"remember-origin\"},{\"reason\":\"condition 1 is false: field $.status equals \\\"error\\\"; the value is \\\"ok\\\"\",\"rule\":\"vendor-locked-retry\"},{\"reason\":\"condition 1 is false: field $.status equals \\\"error\\\"; the value is \\\"ok\\\"\",\"rule\":\"vendor-locked-give-up\"},{\"reason\":\"condition 1 is false: field $.status equals \\\"error\\\"; the value is \\\"ok\\\"\",\"rule\":\"vendor-locked-comment-retry\"},{\"reason\":\"condition 1 is false: field $.status equals \\\"error\\\"; the value is \\\"ok\\\"\",\"rule\":\"vendor-locked-comment-give-up\"},{\"reason\":\"condition 2 is false: meta acked_type equals \\\"update\\\"; the value is \\\"create\\\"\",\"rule\":\"vendor-ack-ok\"},{\"reason\":\"condition 2 is false: meta acked_type equals \\\"comment\\\"; the value is \\\"create\\\"\",\"rule\":\"vendor-comment-ack-ok\"},{\"reason\":\"acks match only rules with type: ack\",\"rule\":\"hand-back-to-customer\"},{\"reason\":\"from customer-a; this message is from vendor-x\",\"rule\":\"create-at-vendor\"},{\"reason\":\"from customer-a; this message is from vendor-x\",\"rule\":\"update-at-vendor\"},{\"reason\":\"from customer-a; this message is from vendor-x\",\"rule\":\"comment-at-vendor\"},{\"reason\":\"listens to timer ''vendor-lock-retry'' only\",\"rule\":\"retry-locked-update\"},{\"reason\":\"listens to timer ''vendor-comment-lock-retry'' only\",\"rule\":\"retry-locked-comment\"},{\"reason\":\"acks match only rules with type: ack\",\"rule\":\"vendor-update-to-customer\"}]"}]','{"status": "ok", "key": "VX-2"}');
INSERT INTO timeline_entries VALUES(9,'5a6cc69e2e074455b61e9301137e5319','[{"at":1796544806.447515,"kind":"received","detail":"update of customer-a/INC0000002","endpoint":"customer-a","who":"bob","message_id":"INC0000002-3","body_column":true,"since_intake_ms":1},{"at":1796544806.447515,"kind":"rule-matched","detail":"rule ''remember-origin'' matched","endpoint":"customer-a","message_id":"INC0000002-3","rule":"remember-origin"},{"at":1796544806.447515,"kind":"rule-matched","detail":"rule ''update-at-vendor'' matched","endpoint":"customer-a","message_id":"INC0000002-3","rule":"update-at-vendor"},{"at":1796544806.447515,"kind":"attribute","detail":"vendor_fields: (none) -> {\"description\":\"Nothing works\",\"priority\":{\"name\":\"Highest\"},\"summary\":\"INC0000002: SAP down\"}","endpoint":"customer-a","message_id":"INC0000002-3","rule":"update-at-vendor"},{"at":1796544806.447515,"kind":"sent","detail":"update to vendor-x: {\"customer_reference\":\"INC0000002\",\"fields\":{\"description\":\"Nothing works\",\"priority\":{\"name\":\"Highest\"},\"summary\":\"INC0000002: SAP down\"},\"key\":\"VX-2\",\"operation\":\"update\"}","endpoint":"vendor-x","message_id":"sb-5a6cc69e2e074455b61e9301137e5319-c5f3fee12d807907-4d0a5e1fa5382a0e-0","rule":"update-at-vendor"}]','{"number": "INC0000002", "sys_id": "94cfc5cce6424973bfa252b9b6c1d2d0", "short_description": "SAP down", "description": "Nothing works", "priority": "1", "state": "2", "assignment_group": {"value": "g-sap", "display_value": "SAP Support"}, "sys_updated_by": "bob"}');
INSERT INTO timeline_entries VALUES(10,'5a6cc69e2e074455b61e9301137e5319','[{"at":1796544806.5015526,"kind":"ack-error","detail":"error ack of update sb-5a6cc69e2e074455b61e9301137e5319-c5f3fee12d807907-4d0a5e1fa5382a0e-0 to vendor-x: open in another session","endpoint":"vendor-x","message_id":"VX-2-ack-2","body_column":true},{"at":1796544806.5015526,"kind":"rule-matched","detail":"rule ''vendor-locked-retry'' matched","endpoint":"vendor-x","message_id":"VX-2-ack-2","rule":"vendor-locked-retry"},{"at":1796544806.5015526,"kind":"counter","detail":"lock_retries: 0 -> 1","endpoint":"vendor-x","message_id":"VX-2-ack-2","rule":"vendor-locked-retry"},{"at":1796544806.5015526,"kind":"delay-scheduled","detail":"timer ''vendor-lock-retry'' in 1m","endpoint":"vendor-x","message_id":"VX-2-ack-2","rule":"vendor-locked-retry"}]','{"status": "error", "code": "LOCKED", "message": "open in another session"}');
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    conversation_id TEXT,
    endpoint TEXT,
    message_id TEXT,
    parked_id TEXT NOT NULL,
    detail TEXT NOT NULL);
DELETE FROM sqlite_sequence;
CREATE INDEX reference_by_conversation ON reference(conversation_id);
CREATE INDEX outbox_by_inbound ON outbox(inbound_endpoint, inbound_message_id, seq);
CREATE INDEX timeline_by_conversation ON timeline(conversation_id, id);
CREATE INDEX timeline_entries_by_conversation ON timeline_entries(conversation_id, id);
CREATE INDEX outbox_failed ON outbox(failed_at) WHERE failed_at IS NOT NULL;
CREATE INDEX audit_by_conversation ON audit(conversation_id, id);
CREATE INDEX outbox_delayed ON outbox(created_at) WHERE delay_ms > 0;
COMMIT;
