// The project page: colour the graph's nodes as the run's events arrive (server-sent
// events from /api/p/<key>/live) and show a node's details when it is clicked.
"use strict";

function statusClass(status) {
  return "st-" + (status || "not run").replace(/ /g, "-");
}

function showRun(message) {
  const run = message.run;
  document.getElementById("run-id").textContent = run.run_id;
  const status = document.getElementById("run-status");
  status.textContent = run.status || "never run";
  status.className = "status " + statusClass(run.status);
  document.getElementById("run-error").textContent = run.error || "";
  document.querySelectorAll("#graph g.node").forEach((group) => {
    const node = run.nodes[group.dataset.node];
    group.setAttribute("class", "node " + statusClass(node && node.status));
  });
  document.querySelectorAll("#nodes tr[data-node]").forEach((row) => {
    const node = run.nodes[row.dataset.node];
    row.querySelector(".node-status").textContent = (node && node.status) || "not run";
  });
  const action = message.action;
  const box = document.getElementById("action");
  if (action) {
    const code = action.exit_code === null ? "" : " (exit " + action.exit_code + ")";
    box.textContent = action.name + ": " + action.state + code;
    const output = document.createElement("pre");
    output.textContent = action.output.join("\n");
    box.appendChild(output);
  }
}

function showNode(url) {
  fetch(url + "?panel=1").then((answer) => answer.text()).then((html) => {
    document.getElementById("panel").innerHTML = html;
  });
}

const live = document.getElementById("run-state");
if (live) {
  const source = new EventSource(live.dataset.live);
  source.onmessage = (event) => showRun(JSON.parse(event.data));
  const graph = document.getElementById("graph");
  graph.addEventListener("click", (event) => {
    const group = event.target.closest("g.node");
    if (group) {
      showNode(graph.dataset.nodes + encodeURIComponent(group.dataset.node));
    }
  });
}
