// A node-opcua server for tests/test_gateway_node_opcua.py: Basic256Sha256 + SignAndEncrypt only, user name
// required (operator/s3cret), client certificates checked against its PKI trust list (the test puts the
// gateway's certificate there). Under Objects/Plant: Counter (Double 0; after any line on stdin 1, 2, 3 … every
// 100 ms up to COUNT, then held), Const (Double 42, never written). Prints one JSON line when listening
// ({"ready", "fingerprint", "ns"}) and one when the counter reached COUNT ({"done"}).
"use strict";
const crypto = require("crypto");
const {
  OPCUAServer, OPCUACertificateManager, SecurityPolicy, MessageSecurityMode, DataType, StatusCodes, nodesets,
} = require("node-opcua");

const port = parseInt(process.argv[2], 10);
const pki = process.argv[3];
const COUNT = parseInt(process.argv[4] || "40", 10);

async function main() {
  const serverCertificateManager = new OPCUACertificateManager({
    rootFolder: pki, automaticallyAcceptUnknownCertificate: false,
  });
  await serverCertificateManager.initialize();
  const server = new OPCUAServer({
    port,
    resourcePath: "/df-peer",
    hostname: "127.0.0.1",
    serverCertificateManager,
    securityPolicies: [SecurityPolicy.Basic256Sha256],
    securityModes: [MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: false,
    userManager: { isValidUser: (user, password) => user === "operator" && password === "s3cret" },
    nodeset_filename: [nodesets.standard],
    serverInfo: { applicationUri: "urn:datafactory:test:node-opcua", productUri: "df-node-opcua-peer" },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.getOwnNamespace();
  const plant = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "Plant" });
  const counter = ns.addVariable({ organizedBy: plant, nodeId: "s=Counter", browseName: "Counter", dataType: "Double" });
  const constant = ns.addVariable({ organizedBy: plant, nodeId: "s=Const", browseName: "Const", dataType: "Double" });
  counter.setValueFromSource({ dataType: DataType.Double, value: 0 }, StatusCodes.Good, new Date());
  constant.setValueFromSource({ dataType: DataType.Double, value: 42 }, StatusCodes.Good, new Date());
  await server.start();
  const der = server.getCertificate();
  const fingerprint = crypto.createHash("sha256").update(der).digest("hex");
  console.log(JSON.stringify({ ready: true, endpoint: server.getEndpointUrl(), fingerprint, ns: ns.index }));
  let n = 0;
  let timer = null;
  process.stdin.on("data", () => {  // any line on stdin: start counting (the test has subscribed by then)
    if (timer !== null) return;
    timer = setInterval(() => {
      n += 1;
      counter.setValueFromSource({ dataType: DataType.Double, value: n }, StatusCodes.Good, new Date());
      if (n >= COUNT) {
        clearInterval(timer);
        console.log(JSON.stringify({ done: n }));
      }
    }, 100);
  });
  const stop = async () => { await server.shutdown(0); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => { console.error(err); process.exit(1); });
