// A Sparkplug B edge node built on Eclipse Tahu's JavaScript client (npm sparkplug-client), driven by
// tests/test_gateway_sparkplug_tahu.py. It publishes every datatype with its extremes, report-by-exception
// data, nulls, Bytes/File/DataSet metrics (no time series: a host refuses them), DEFLATE and GZIP compressed
// device data, enough messages for the sequence number to wrap, one deliberate sequence gap (then answers the
// host's rebirth request), a DDEATH, and finally disconnects abruptly so the broker publishes its NDEATH will.
// Every value handed to the client is written to the ground-truth file (argv[5]) as JSON: ints as decimal
// strings, so 64-bit values stay exact.
//
// usage: node edge.js <mqtt url> <group> <edge node> <ground truth file>
"use strict";
const fs = require("fs");
const Long = require("long");
const sparkplug = require("sparkplug-client");

const [url, group, nodeId, outPath] = process.argv.slice(2);
const L = (s) => Long.fromString(s, false);
const UL = (s) => Long.fromString(s, true);
const longText = "长文本 long text ".repeat(1500);

// name, Tahu type, values in order (the first one is the birth value)
const METRICS = [
  ["Int8", "Int8", [-128, 127, 0, -1]],
  ["Int16", "Int16", [-32768, 32767, 0, -1]],
  ["Int32", "Int32", [-2147483648, 2147483647, 0, -1]],
  ["Int64", "Int64", [L("-9223372036854775808"), L("9223372036854775807"), 0, -1, L("9007199254740993")]],
  ["UInt8", "UInt8", [0, 255]],
  ["UInt16", "UInt16", [0, 65535]],
  ["UInt32", "UInt32", [0, 4294967295]],
  ["UInt64", "UInt64", [0, UL("18446744073709551615"), UL("9007199254740993")]],
  ["Float", "Float", [3.4028234663852886e38, 1.401298464324817e-45, 0, -1, -3.4028234663852886e38]],
  ["Double", "Double", [1.7976931348623157e308, 5e-324, 0, -1, 0.1]],
  ["Boolean", "Boolean", [true, false, true]],
  ["String", "String", ["", longText, "ünïcødé 工厂 ✓"]],
  ["Text", "Text", ["", "line 1\nline 2\ttab"]],
  ["DateTime", "DateTime", [0, 1764547200123]],
  ["UUID", "UUID", ["123e4567-e89b-12d3-a456-426614174000"]],
  ["Tick", "UInt32", [0]],
];
const INT_TYPES = new Set(["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "DateTime"]);
const ALIAS_BASE = 2 ** 32 + 7; // aliases past 2^32
const DEVICE = [
  ["Temp", "Double", [21.5]],
  ["Count", "Int16", [-7]],
];

const truth = [];
const current = new Map(); // "device/name" -> value
let ts = Date.now() - 600000; // unique, increasing metric timestamps (ms)

function record(kind, device, name, type, value, t) {
  let v = value;
  if (value === null) v = null;
  else if (INT_TYPES.has(type)) v = { int: value.toString() };
  else if (type === "Float" || type === "Double") v = { float: value };
  truth.push({ kind, device, name, type, value: v, ts: t });
}

function metric(kind, device, name, type, value, alias, withName) {
  ts += 1;
  record(kind, device, name, type, value, ts);
  current.set(`${device}/${name}`, value);
  const m = { type, value, alias, timestamp: ts };
  if (withName) m.name = name;
  return m;
}

const client = sparkplug.newClient({
  serverUrl: url,
  groupId: group,
  edgeNode: nodeId,
  clientId: `tahu-${nodeId}-${process.pid}`,
  username: "",
  password: "",
  version: "spBv1.0",
});
let births = 0;

function publishBirths() {
  births += 1;
  const nb = METRICS.map(([name, type, values], i) => {
    const value = current.has(`/${name}`) ? current.get(`/${name}`) : values[0];
    return metric("NBIRTH", "", name, type, value, ALIAS_BASE + i, true);
  });
  nb[0].properties = { engUnit: { type: "String", value: "counts" } };
  // not time-series values: the host refuses them with a reason (not in the ground truth: nothing is stored)
  nb.push({ name: "Blob", type: "Bytes", value: Buffer.from([0, 1, 254, 255]), alias: ALIAS_BASE + 50, timestamp: ts });
  nb.push({ name: "Firmware", type: "File", value: Buffer.from("firmware"), alias: ALIAS_BASE + 51, timestamp: ts });
  nb.push({ name: "Recipe", type: "DataSet", alias: ALIAS_BASE + 52, timestamp: ts, value: {
    numOfColumns: 2, types: ["Int32", "String"], columns: ["step", "name"], rows: [[1, "heat"], [2, "hold"]] } });
  client.publishNodeBirth({ timestamp: ts, metrics: nb });
  const db = DEVICE.map(([name, type, values], i) => {
    const value = current.has(`d1/${name}`) ? current.get(`d1/${name}`) : values[0];
    return metric("DBIRTH", "d1", name, type, value, ALIAS_BASE + 100 + i, true);
  });
  client.publishDeviceBirth("d1", { timestamp: ts, metrics: db });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function scenario() {
  await sleep(1000);
  // report by exception: each NDATA carries only the metrics whose next value exists
  for (let step = 1; step < 6; step++) {
    const ms = [];
    METRICS.forEach(([name, type, values], i) => {
      if (step < values.length) ms.push(metric("NDATA", "", name, type, values[step], ALIAS_BASE + i, false));
    });
    client.publishNodeData({ timestamp: ts, metrics: ms });
    await sleep(30);
  }
  // nulls
  client.publishNodeData({
    timestamp: ts,
    metrics: [
      metric("NDATA", "", "Int32", "Int32", null, ALIAS_BASE + 2, false),
      metric("NDATA", "", "String", "String", null, ALIAS_BASE + 11, false),
      metric("NDATA", "", "Double", "Double", null, ALIAS_BASE + 9, false),
    ],
  });
  // compressed device data
  client.publishDeviceData("d1", { timestamp: ts, metrics: [metric("DDATA", "d1", "Temp", "Double", 22.25, ALIAS_BASE + 100, false)] }, { compress: true });
  client.publishDeviceData("d1", { timestamp: ts, metrics: [metric("DDATA", "d1", "Count", "Int16", -32768, ALIAS_BASE + 101, false)] }, { compress: true, algorithm: "GZIP" });
  client.publishDeviceData("d1", { timestamp: ts, metrics: [metric("DDATA", "d1", "Temp", "Double", -0.5, ALIAS_BASE + 100, false)] }, { compress: true, algorithm: "DEFLATE" });
  await sleep(200);
  // 270 messages: the sequence number wraps 255 -> 0
  for (let i = 1; i <= 270; i++) {
    client.publishNodeData({ timestamp: ts, metrics: [metric("NDATA", "", "Tick", "UInt32", i, ALIAS_BASE + 15, false)] });
    if (i % 30 === 0) await sleep(20);
  }
  await sleep(3000); // let the host's rebirth hold-off (2 s in the test) pass
  // a deliberate gap: one sequence number is never sent; the host must ask for a rebirth
  client.seq += 1;
  client.publishNodeData({ timestamp: ts, metrics: [metric("NDATA", "", "Tick", "UInt32", 1000, ALIAS_BASE + 15, false)] });
  const deadline = Date.now() + 15000;
  while (births < 2 && Date.now() < deadline) await sleep(50);
  await sleep(500);
  ts += 1;
  truth.push({ kind: "DDEATH", device: "d1", ts });
  client.publishDeviceDeath("d1", { timestamp: ts, metrics: [] });
  await sleep(700);
  truth.push({ kind: "NDEATH", device: "", ts: Date.now(), births });
  fs.writeFileSync(outPath, JSON.stringify(truth));
  client.client.stream.destroy(); // abrupt: no DISCONNECT, the broker publishes the NDEATH will
  await sleep(300);
  process.exit(0);
}

client.on("birth", () => {
  if (births === 0) {
    publishBirths();
    scenario().catch((err) => {
      console.error(err);
      process.exit(2);
    });
  }
});
client.on("ncmd", (payload) => {
  for (const m of payload.metrics || []) {
    if (m.name === "Node Control/Rebirth" && m.value === true) publishBirths();
  }
});
client.on("error", (err) => {
  console.error(`edge node: ${err}`);
  process.exit(3);
});
