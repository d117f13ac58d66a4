//! `GET /openapi.json`: an OpenAPI 3 document of every JSON endpoint, Workfront's and
//! the operators'.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}

fn failure(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Failure"}}}})
}

fn ops_error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpsError"}}}})
}

fn ok(schema: &str) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn action_param() -> Value {
    json!({"name": "action", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn job_id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

pub fn document() -> Value {
    let ops_security = json!([{"adminToken": []}]);
    // 1–255 characters, no control characters (Unicode category Cc), as validated.
    let text = |max: u32| json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"});
    // A filter: the same, or empty (an empty value, as HTML forms send, means "any").
    let filter = || json!({"type": "string", "maxLength": 255, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"});
    let int64 = || json!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Docket", "version": docket::VERSION,
                 "description": "Workfront document webhook provider that runs custom actions as durable jobs."},
        "paths": {
            "/serviceInfo": {"get": {"summary": "What Docket offers (no authentication)", "operationId": "serviceInfo",
                "responses": {"200": ok("ServiceInfo")}}},
            "/customAction": {"get": {
                "summary": "Queue a custom action on a document", "operationId": "customAction",
                "security": [{"apiKey": []}],
                "parameters": [
                    {"name": "name", "in": "query", "required": true, "schema": text(255)},
                    {"name": "documentId", "in": "query", "required": true, "schema": text(255)},
                    {"name": "documentVersionId", "in": "query", "required": true, "schema": text(255)},
                    {"name": "username", "in": "header", "required": false, "schema": text(255)}
                ],
                "responses": {
                    "200": ok("Success"),
                    "400": failure("A parameter is missing, empty, repeated, too long, not UTF-8 or holds control characters"),
                    "403": failure("Missing or wrong apiKey"),
                    "404": failure("No such action"),
                    "414": failure("Query string too long"),
                    "503": failure("The job could not be stored")
                }}},
            "/healthz": {"get": {"summary": "The process answers", "operationId": "healthz", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Database reachable and schema current", "operationId": "readyz",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/ops/jobs": {"get": {
                "summary": "Jobs, newest first, filtered; keyset pagination", "operationId": "listJobs", "security": ops_security,
                "parameters": [
                    {"name": "state", "in": "query", "allowEmptyValue": true, "schema": {"$ref": "#/components/schemas/JobState"}},
                    {"name": "action", "in": "query", "schema": filter()},
                    {"name": "documentId", "in": "query", "schema": filter()},
                    {"name": "requestedBy", "in": "query", "schema": filter()},
                    {"name": "createdSince", "in": "query", "allowEmptyValue": true, "schema": {"type": "string", "format": "date-time"}},
                    {"name": "createdUntil", "in": "query", "allowEmptyValue": true, "schema": {"type": "string", "format": "date-time"}},
                    {"name": "cursor", "in": "query", "allowEmptyValue": true, "schema": {"type": "string", "format": "uuid"}},
                    {"name": "limit", "in": "query", "allowEmptyValue": true, "description": "page size (default 50), clamped to 1..200",
                     "schema": int64()}
                ],
                "responses": {"200": ok("JobPage"), "400": ops_error("Bad filter"), "401": ops_error("Missing or wrong admin token")}}},
            "/ops/jobs/{id}": {"get": {
                "summary": "A job, its attempts, why it is where it is, and operator actions on it", "operationId": "getJob",
                "security": ops_security, "parameters": [job_id_param()],
                "responses": {"200": ok("JobDetail"), "400": ops_error("Not a job id"), "401": ops_error("Unauthorized"), "404": ops_error("No such job")}}},
            "/ops/jobs/{id}/retry": {"post": {
                "summary": "Run a failed or cancelled job again with a fresh attempt budget", "operationId": "retryJob",
                "security": ops_security, "parameters": [job_id_param()],
                "responses": {"200": {"description": "queued again"}, "400": ops_error("Not a job id"), "401": ops_error("Unauthorized"), "404": ops_error("No such job"), "409": ops_error("Job is not failed or cancelled")}}},
            "/ops/jobs/{id}/cancel": {"post": {
                "summary": "Cancel a waiting job, or ask the worker of a running job to stop it", "operationId": "cancelJob",
                "security": ops_security, "parameters": [job_id_param()],
                "responses": {"200": {"description": "cancelled or cancel_requested"}, "400": ops_error("Not a job id"), "401": ops_error("Unauthorized"), "404": ops_error("No such job"), "409": ops_error("Job already finished")}}},
            "/ops/actions/{action}/retry-failed": {"post": {
                "summary": "Retry every failed job of one action", "operationId": "retryFailed", "security": ops_security,
                "parameters": [{"name": "action", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "how many jobs were queued again"}, "401": ops_error("Unauthorized")}}},
            "/ops/actions": {"get": {"summary": "Every action's limits, usage, pause and circuit", "operationId": "listActions",
                "security": ops_security,
                "responses": {"200": ok("ActionFlows"), "401": ops_error("Unauthorized")}}},
            "/ops/actions/{action}/pause": {"post": {
                "summary": "Pause an action: triggers are still accepted, no job of it starts", "operationId": "pauseAction",
                "security": ops_security, "parameters": [action_param()],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PauseRequest"}}}},
                "responses": {"200": {"description": "paused"}, "400": ops_error("Bad body: not a JSON object, unknown field, note too long or with control characters"),
                              "401": ops_error("Unauthorized"), "404": ops_error("No such action"), "409": ops_error("`until` has already passed")}}},
            "/ops/actions/{action}/resume": {"post": {
                "summary": "End an operator's pause", "operationId": "resumeAction", "security": ops_security,
                "parameters": [action_param()],
                "responses": {"200": {"description": "resumed"}, "401": ops_error("Unauthorized"), "404": ops_error("No such action"), "409": ops_error("Not paused")}}},
            "/ops/actions/{action}/close-circuit": {"post": {
                "summary": "Close an action's circuit by hand (and end a back-pressure wait)", "operationId": "closeCircuit",
                "security": ops_security, "parameters": [action_param()],
                "responses": {"200": {"description": "closed"}, "401": ops_error("Unauthorized"), "404": ops_error("No such action"), "409": ops_error("Already closed")}}},
            "/ops/stats": {"get": {"summary": "Counts, lag, throughput, live workers, every action's flow control", "operationId": "stats", "security": ops_security,
                "responses": {"200": {"description": "figures"}, "401": ops_error("Unauthorized")}}},
            "/ops/audit": {"get": {"summary": "Operator actions, newest first", "operationId": "audit", "security": ops_security,
                "parameters": [{"name": "jobId", "in": "query", "schema": {"type": "string", "format": "uuid"}},
                               {"name": "limit", "in": "query", "description": "clamped to 1..1000", "schema": int64()}],
                "responses": {"200": {"description": "operator actions"}, "400": ops_error("Bad parameter"), "401": ops_error("Unauthorized")}}}
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "apiKey"},
                "adminToken": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Failure": {"type": "object", "required": ["status", "error"],
                    "properties": {"status": {"type": "string", "enum": ["failure"]}, "error": {"type": "string"}}},
                "Success": {"type": "object", "required": ["status", "jobId"],
                    "properties": {"status": {"type": "string", "enum": ["success"]}, "jobId": {"type": "string", "format": "uuid"}}},
                "ServiceInfo": {"type": "object", "required": ["webhookVersion", "version", "publisher", "availableEndpoints", "customActions"],
                    "properties": {
                        "webhookVersion": {"type": "string"}, "version": {"type": "string"}, "publisher": {"type": "string"},
                        "availableEndpoints": {"type": "array", "items": {"type": "string"}},
                        "customActions": {"type": "array", "items": {"type": "object", "required": ["name", "displayName"],
                            "properties": {"name": {"type": "string"}, "displayName": {"type": "string"}}}}}},
                "OpsError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "JobState": {"type": "string", "enum": docket::domain::JobState::ALL.map(|s| s.as_str())},
                "Job": {"type": "object", "required": ["id", "action", "documentId", "documentVersionId", "state", "attempts", "maxAttempts", "runAt", "createdAt", "updatedAt"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"}, "action": {"type": "string"},
                        "documentId": {"type": "string"}, "documentVersionId": {"type": "string"},
                        "requestedBy": {"type": "string", "nullable": true}, "state": {"$ref": "#/components/schemas/JobState"},
                        "attempts": {"type": "integer"}, "maxAttempts": {"type": "integer"},
                        "runAt": {"type": "string", "format": "date-time"}, "lastError": {"type": "string", "nullable": true},
                        "leaseOwner": {"type": "string", "nullable": true},
                        "leaseExpiresAt": {"type": "string", "format": "date-time", "nullable": true},
                        "createdAt": {"type": "string", "format": "date-time"}, "updatedAt": {"type": "string", "format": "date-time"},
                        "finishedAt": {"type": "string", "format": "date-time", "nullable": true},
                        "cancelRequestedAt": {"type": "string", "format": "date-time", "nullable": true},
                        "result": {"nullable": true, "description": "the value the action's `result` JSON pointer found in the target's successful answer (any JSON value), or null"}}},
                "PauseRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "until": {"type": "string", "format": "date-time", "nullable": true, "description": "the pause ends by itself then; left out or null: until resumed"},
                    "note": {"type": "string", "nullable": true, "minLength": 1, "maxLength": 500, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", "description": "why, shown with the pause"}}},
                "ActionFlows": {"type": "object", "required": ["actions"], "properties": {
                    "actions": {"type": "array", "items": {"type": "object", "required": ["action", "running"], "properties": {
                        "action": {"type": "string"},
                        "limitGroup": {"type": "string", "nullable": true},
                        "maxConcurrency": {"type": "integer", "nullable": true},
                        "rate": {"type": "string", "nullable": true},
                        "burst": {"type": "integer", "nullable": true},
                        "effectiveRatePerSecond": {"type": "number", "nullable": true},
                        "running": {"type": "integer"},
                        "groupRunning": {"type": "integer", "nullable": true},
                        "paused": {"type": "object", "nullable": true},
                        "backoffUntil": {"type": "string", "format": "date-time", "nullable": true},
                        "circuit": {"type": "object", "nullable": true}}}}}},
                "JobPage": {"type": "object", "required": ["jobs"], "properties": {
                    "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                    "nextCursor": {"type": "string", "format": "uuid", "nullable": true}}},
                "JobDetail": {"type": "object", "required": ["job", "attempts", "explanation", "operatorActions"], "properties": {
                    "job": {"$ref": "#/components/schemas/Job"},
                    "attempts": {"type": "array", "items": {"type": "object"}},
                    "explanation": {"type": "string"},
                    "operatorActions": {"type": "array", "items": {"type": "object"}}}}
            }
        }
    })
}
