// Collections: list, create, select (the default for requests that name none) and delete.
import { api } from "../api.js";
import { withCollection } from "../collections-select.js";
import { $, formatInstant, h, plural, setStatus, showError, startPage, toast } from "../ui.js";

const body = $("#collections tbody");
const status = $("#create-status");
const dialog = $("#confirm-delete");

function row(c) {
  const name = h("th", { scope: "row" }, h("a", { href: withCollection("/", c.name) }, c.name),
    c.active ? h("span", { class: "tag active" }, "selected") : "");
  const select = c.active ? null : h("button", { type: "button", class: "secondary", onclick: () => choose(c.name),
    "aria-label": `Select ${c.name}` }, "Select");
  const remove = h("button", { type: "button", class: "danger", onclick: () => confirmDelete(c.name),
    "aria-label": `Delete ${c.name}` }, "Delete");
  return h("tr", { dataset: { name: c.name } }, name, h("td", {}, plural(c.asset_count, "photo")),
    h("td", {}, c.model || h("span", { class: "muted" }, "set by the first ingest")),
    h("td", {}, formatInstant(c.created_at)), h("td", { class: "actions" }, select, remove));
}

async function load() {
  const collections = await api.get("/collections");
  body.replaceChildren(...collections.map(row));
  if (!collections.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No collections yet.")));
}

async function choose(name) {
  try {
    await api.post("/collections/select", { name });
    toast(`${name} is now the selected collection.`);
    await load();
    body.querySelector(`tr[data-name="${CSS.escape(name)}"] a`).focus();
  } catch (error) {
    showError(error);
  }
}

function confirmDelete(name) {
  dialog.querySelector(".name").textContent = name;
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "delete") return;
    try {
      await api.del(`/collections/${encodeURIComponent(name)}`);
      toast(`Deleted ${name}.`);
      await load();
      $("#new-name").focus();
    } catch (error) {
      showError(error);
    }
  };
  dialog.showModal();
}

if (startPage()) {
  load().catch((error) => showError(error));
  $("#create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#new-name").value.trim();
    const select = $("#new-select").checked;
    try {
      await api.post("/collections", { name, select });
      setStatus(status, `Created ${name}${select ? " and selected it" : ""}.`, "ok");
      event.target.reset();
      await load();
    } catch (error) {
      showError(error, status);
    }
  });
}
