// The JavaScript LangGraph SDK against `stepgraph dev`, the way a TypeScript front end drives it.
// Run by tests/conformance/test_dev_clients.py, which starts the server and sets STEPGRAPH_URL.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client } from "@langchain/langgraph-sdk";

const client = new Client({ apiUrl: process.env.STEPGRAPH_URL ?? "http://127.0.0.1:2024" });

test("threads, streamed runs, an interrupt resumed and the history, through @langchain/langgraph-sdk", async () => {
  // A streamed run: whole states (`values`) and the model's tokens (`messages-tuple`).
  const thread = await client.threads.create({ metadata: { from: "js" } });
  const events = [];
  for await (const part of client.runs.stream(thread.thread_id, "chat", {
    input: { messages: [{ role: "user", content: "hi there" }] },
    streamMode: ["values", "messages-tuple"],
  })) {
    events.push(part);
  }
  assert.equal(events[0].event, "metadata");
  assert.ok(events[0].data.run_id, "the metadata event names the run");
  const values = events.filter((e) => e.event === "values").map((e) => e.data);
  const last = values.at(-1).messages.map((m) => m.content);
  assert.deepEqual(last, ["hi there", "You said: hi there", "Anything else?"]);
  const tokens = events.filter((e) => e.event === "messages");
  assert.ok(tokens.length > 2, `expected the reply token by token, got ${tokens.length} messages events`);
  for (const { data } of tokens) {
    assert.ok(Array.isArray(data) && data.length === 2, "messages-tuple: [message chunk, metadata]");
  }
  const streamed = tokens
    .filter(({ data: [, meta] }) => meta.langgraph_node === "respond")
    .map(({ data: [chunk] }) => chunk.content)
    .join("");
  assert.equal(streamed, "You said: hi there");
  assert.equal((await client.threads.get(thread.thread_id)).metadata.from, "js");

  // An interrupt: the run stops on interrupt(), the thread says so, a Command resumes it.
  const review = await client.threads.create();
  await client.runs.wait(review.thread_id, "approval", { input: { items: [] } });
  const parked = await client.threads.get(review.thread_id);
  assert.equal(parked.status, "interrupted");
  const state = await client.threads.getState(review.thread_id);
  assert.deepEqual(state.next, ["review"]);
  assert.deepEqual(state.tasks[0].interrupts[0].value, { question: "approve?", items: ["draft"] });
  const resumed = [];
  for await (const part of client.runs.stream(review.thread_id, "approval", {
    command: { resume: "yes" },
    streamMode: "updates",
  })) {
    resumed.push(part);
  }
  assert.deepEqual(
    resumed.filter((p) => p.event === "updates").map((p) => p.data),
    [{ review: { items: ["review:yes"] } }, { publish: { items: ["published"] } }],
  );
  assert.equal((await client.threads.get(review.thread_id)).status, "idle");

  // The history, newest first, from the input checkpoint to the end.
  const history = await client.threads.getHistory(review.thread_id);
  assert.deepEqual(history[0].values.items, ["draft", "review:yes", "published"]);
  assert.deepEqual(history[0].next, []);
  assert.equal(history.at(-1).metadata.source, "input");
  assert.ok(history.some((s) => s.next.includes("review") && s.tasks[0]?.interrupts?.length === 1));
  const runs = await client.runs.list(review.thread_id);
  assert.equal(runs.length, 2);
  assert.ok(runs.every((r) => r.status === "success"));
});
