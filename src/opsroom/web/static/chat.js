// opsroom web chat and console buttons: plain JavaScript, no build step.
// Everything from the server is put on the page with textContent, never innerHTML,
// so script output can never inject markup.
(() => {
  "use strict";

  const body = document.body;
  const csrfHeader = body.dataset.csrfHeader || "X-CSRF-Token";
  const csrf = body.dataset.csrf || "";

  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", [csrfHeader]: csrf },
      body: JSON.stringify(data),
    });
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (!response.ok) {
      const detail = payload && payload.detail;
      throw new Error(typeof detail === "string" ? detail : `request failed (HTTP ${response.status})`);
    }
    return payload;
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // Light markdown of Text blocks: `code` spans only; the rest stays plain text.
  function inline(text) {
    const p = el("p", { class: "text" });
    text.split("`").forEach((part, i) => p.append(i % 2 ? el("code", { text: part }) : part));
    return p;
  }

  function say(room, text) {
    return post("/api/v1/messages", { room, text });
  }

  // ---- console pages: Cancel (with a confirmation) and Re-run buttons -----------------------

  function replyText(result) {
    const replies = (result && result.replies) || [];
    return replies.map((r) => r.text).join("\n") || (result && result.output) || "done";
  }

  document.addEventListener("click", async (event) => {
    const asking = event.target.closest("button[data-confirm]");
    if (asking) {
      // A job is stopped only after a second, explicit tap.
      const box = document.getElementById(asking.dataset.confirm);
      if (box) {
        box.hidden = false;
        asking.hidden = true;
        const yes = box.querySelector("button[data-post]");
        if (yes) yes.focus();
      }
      return;
    }
    const dismiss = event.target.closest("button[data-dismiss]");
    if (dismiss) {
      const box = document.getElementById(dismiss.dataset.dismiss);
      if (box) {
        box.hidden = true;
        const opener = document.querySelector(`button[data-confirm="${box.id}"]`);
        if (opener) opener.hidden = false;
      }
      return;
    }
    const button = event.target.closest("button[data-post], button[data-rerun]");
    if (!button) return;
    event.preventDefault();
    const out = document.getElementById(button.dataset.result || "action-result");
    button.disabled = true;
    try {
      if (button.dataset.rerun !== undefined) {
        await say(button.dataset.room, button.dataset.rerun);
        window.location.href = `/chat/${encodeURIComponent(button.dataset.room.replace(/^web:/, ""))}`;
        return;
      }
      const result = await post(button.dataset.post, {});
      if (out) out.textContent = replyText(result);
    } catch (error) {
      if (out) out.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });

  // The job page's live part says when the job ended: Cancel has nothing left to stop.
  document.body.addEventListener("htmx:afterSwap", () => {
    const live = document.getElementById("job-live");
    const cancelBox = document.getElementById("cancel-box");
    if (live && cancelBox && live.dataset.finished === "true") cancelBox.remove();
  });

  // On a phone the page menu and the rooms are scrolling rows: show where you are in them.
  for (const here of document.querySelectorAll("#pages a[aria-current=page], .rooms a[aria-current=page]")) {
    const row = here.closest("#pages, .rooms");
    if (row.scrollWidth > row.clientWidth) {
      row.scrollLeft = here.getBoundingClientRect().left - row.getBoundingClientRect().left - 16;
    }
  }

  // ---- the web chat ------------------------------------------------------------------------

  const chat = document.getElementById("chat");
  if (!chat) return;

  const room = chat.dataset.room;
  const roomPath = encodeURIComponent(chat.dataset.roomName);
  const prefix = chat.dataset.prefix || "!";
  const me = chat.dataset.me;
  const stream = document.getElementById("stream");
  const conn = document.getElementById("conn");
  const usage = document.getElementById("usage");
  const input = document.getElementById("message");
  const LIVE = new Set(["progress", "output", "job"]);
  const cards = new Map(); // job id -> the one card its live updates edit in place
  const bySeq = new Map(); // seq of a bot message -> its element, for events that replace it
  const jobs = new Map(); // job id -> a promise of the job (who asked for it), fetched once
  let lastSeq = 0;

  function jobInfo(jobId) {
    if (!jobs.has(jobId)) {
      jobs.set(
        jobId,
        fetch(`/api/v1/jobs/${jobId}?tail=0`, { credentials: "same-origin" })
          .then((r) => (r.ok ? r.json() : null))
          .catch(() => null),
      );
    }
    return jobs.get(jobId);
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  function act(value) {
    const [verb, arg, index] = value.split(":");
    if (verb === "approve" || verb === "deny") return say(room, `${prefix}${verb} ${arg}`);
    if (verb === "menu") return choose(arg, Number(index));
    return say(room, value);
  }

  function choose(menuId, index) {
    return post(`/api/v1/rooms/${roomPath}/choose`, { menu_id: menuId, index });
  }

  // Buttons answer once: disable the whole group, show errors beside it.
  function buttonGroup(cls, entries, onPick) {
    const group = el("div", { class: `buttons ${cls}` });
    const note = el("span", { class: "muted note" });
    entries.forEach(([label, value, style]) => {
      group.append(
        el("button", {
          type: "button",
          class: style || "",
          "data-value": value,
          text: label,
          onclick: async () => {
            group.querySelectorAll("button").forEach((b) => (b.disabled = true));
            try {
              await onPick(value);
              note.textContent = `✓ ${label}`;
            } catch (error) {
              note.textContent = error.message;
              group.querySelectorAll("button").forEach((b) => (b.disabled = false));
            }
          },
        }),
      );
    });
    group.append(note);
    return group;
  }

  function fileLink(block, jobId) {
    const link = el("a", { class: "file", href: jobId ? `/jobs/${jobId}` : "#", text: `📎 ${block.name}` });
    const size = el("span", { class: "muted", text: ` ${formatSize(block.size)}` });
    if (jobId) {
      // The reply names the file; the job's detail gives its download address.
      fetch(`/api/v1/jobs/${jobId}`, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then((job) => {
          const found = job && job.attachments.find((a) => a.name === block.name);
          if (found) {
            link.href = found.url;
            link.setAttribute("download", block.name);
          }
        })
        .catch(() => {});
    }
    return el("div", { class: "file-block" }, link, size);
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  }

  function progressBlock(block, reuse) {
    const bar = reuse || el("progress", { max: "100" });
    if (block.percent === null || block.percent === undefined) bar.removeAttribute("value");
    else bar.value = Math.max(0, Math.min(100, block.percent));
    const pct = block.percent === null || block.percent === undefined ? "" : `${Math.round(block.percent)}% `;
    const label = el("span", { class: "progress-label", text: `${pct}${block.message || ""}` });
    return el("div", { class: "progress" }, bar, label);
  }

  function renderBlock(block, ev, old) {
    const jobId = ev.job_id;
    switch (block.type) {
      case "text":
        return inline(block.text);
      case "code": {
        const pre = el("pre", {}, el("code", { text: block.lines.join("\n") }));
        if (!block.more) return pre;
        // The lines left out come before the ones shown: say so above them.
        const link = block.link || "";
        const href = jobId !== null && jobId !== undefined ? `/jobs/${jobId}` : /^(https?:\/\/|\/)/.test(link) ? link : null;
        const more = `… ${plural(block.more, "more line")} — full log`;
        const marker = href ? el("a", { class: "more", href, text: more }) : el("span", { class: "more", text: link ? `${more}: ${link}` : more });
        return el("div", { class: "code" }, marker, pre);
      }
      case "table": {
        const head = el("tr", {}, ...block.columns.map((c) => el("th", { scope: "col", text: c })));
        const rows = block.rows.map((r) => el("tr", {}, ...r.map((c) => el("td", { text: c }))));
        return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
      }
      case "progress":
        return progressBlock(block, old && old.querySelector("progress"));
      case "status": {
        const line = inline(block.text);
        line.className = `status status-${block.level}`;
        return line;
      }
      case "file":
        return fileLink(block, jobId);
      case "choices": {
        const group = buttonGroup(
          "choices",
          block.options.map((o, i) => [o, String(i)]),
          (i) => choose(block.menu, Number(i)),
        );
        return el("div", { class: "menu" }, el("p", { class: "prompt", text: block.prompt }), group);
      }
      case "actions": {
        const group = buttonGroup(
          "actions",
          block.buttons.map((b) => [b.label, b.value, b.value.split(":")[0]]),
          act,
        );
        const votes = block.buttons.some((b) => /^(approve|deny):/.test(b.value));
        if (votes && jobId !== null && jobId !== undefined) {
          // Nobody approves their own request: its requester sees who must, not buttons.
          group.hidden = true;
          jobInfo(jobId).then((job) => {
            if (job && job.requester === me) {
              group.replaceWith(
                el("p", { class: "muted own-request", text: "You asked for this job: another member of the role must approve or deny it." }),
              );
            } else {
              group.hidden = false;
            }
          });
        }
        return group;
      }
      default:
        return el("pre", { text: ev.text || "" });
    }
  }

  function fill(card, ev, whole) {
    const content = el("div", { class: "blocks" });
    const blocks = ev.blocks && ev.blocks.length ? ev.blocks : [{ type: "text", text: ev.text || "" }];
    const ended = blocks.some((b) => b.type === "status" && b.level !== "info");
    const old = card.querySelector(".blocks");
    // An output update of a running job keeps its progress bar; the end replaces it.
    // A replacement (an edit) is the whole message: it keeps nothing of the old one.
    if (old && !whole && !ended && !blocks.some((b) => b.type === "progress")) {
      const bar = old.querySelector(".progress");
      if (bar) content.append(bar);
    }
    // A finished job's card leads with its outcome, then what it printed.
    const last = blocks[blocks.length - 1];
    const outcome = ev.kind === "job" && ended && last.type === "status" ? last : null;
    if (outcome) content.append(renderBlock(outcome, ev, old));
    for (const block of blocks) if (block !== outcome) content.append(renderBlock(block, ev, old));
    if (old) old.replaceWith(content);
    else card.insertBefore(content, card.querySelector(".card-actions"));
    card.dataset.kind = ev.kind;
    card.dataset.seq = ev.seq;
    card.className = `event bot kind-${ev.kind}${ended ? " ended" : ""}`;
    const running = LIVE.has(ev.kind) && !ended && ev.job_id !== null && ev.job_id !== undefined;
    cancelControls(card, ev.job_id, running);
  }

  // A running job's card can stop it: Cancel, then a second, explicit confirmation.
  function cancelControls(card, jobId, running) {
    const existing = card.querySelector(".card-actions");
    if (!running) {
      if (existing) existing.remove();
      return;
    }
    if (existing) return;
    const box = el("div", { class: "card-actions", hidden: true });
    card.append(box);
    jobInfo(jobId).then((job) => {
      const ended = ["succeeded", "failed", "cancelled", "timed_out", "interrupted", "denied", "expired"];
      if (!job || job.requester !== me || ended.includes(job.state) || !box.isConnected) return;
      const confirmId = `cancel-confirm-${jobId}`;
      const resultId = `cancel-result-${jobId}`;
      box.append(
        el("button", { type: "button", class: "deny cancel", "data-confirm": confirmId, text: "Cancel…" }),
        el(
          "div",
          { class: "confirm", id: confirmId, role: "alertdialog", "aria-label": `Confirm cancel of job ${jobId}`, hidden: true },
          el("span", { text: `Stop job ${jobId} (${job.command})? It cannot be resumed.` }),
          el("button", { type: "button", class: "deny", "data-post": `/api/v1/jobs/${jobId}/cancel`, "data-result": resultId, text: `Yes, cancel job ${jobId}` }),
          el("button", { type: "button", class: "secondary", "data-dismiss": confirmId, text: "Keep it running" }),
        ),
        el("p", { class: "muted note", id: resultId, "aria-live": "polite" }),
      );
      box.hidden = false;
    });
  }

  function meta(author, at, jobId) {
    const time = at ? new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
    return el(
      "div",
      { class: "meta" },
      el("span", { class: "author", text: author }),
      jobId ? el("a", { class: "job-link", href: `/jobs/${jobId}`, text: `job ${jobId}` }) : null,
      el("time", { datetime: at || "", text: time }),
    );
  }

  function add(ev) {
    if (ev.seq <= lastSeq) return;
    lastSeq = ev.seq;
    const empty = document.getElementById("empty-hint");
    if (empty) empty.remove();
    const follow = stream.scrollHeight - stream.scrollTop - stream.clientHeight < 80;
    if (ev.kind === "message") {
      const mine = ev.author === me ? " mine" : "";
      stream.append(
        el("li", { class: `event person${mine}`, "data-seq": ev.seq }, meta(ev.author, ev.at), el("p", { class: "said", text: ev.text })),
      );
    } else {
      const jobId = ev.job_id;
      const live = jobId !== null && jobId !== undefined && LIVE.has(ev.kind);
      // An edit arrives as a new event naming the message it replaces (`replaces`).
      const edit = ev.replaces !== null && ev.replaces !== undefined;
      let card = edit ? bySeq.get(ev.replaces) : undefined;
      if (!card && live) card = cards.get(jobId);
      if (!card) {
        card = el("li", { "data-job": jobId ?? "" }, meta("opsroom", ev.at, jobId));
        stream.append(card);
      }
      if (live) cards.set(jobId, card);
      bySeq.set(ev.seq, card);
      if (edit) bySeq.set(ev.replaces, card);
      fill(card, ev, edit);
    }
    if (follow) stream.scrollTop = stream.scrollHeight;
  }

  async function start() {
    try {
      const r = await fetch(`/api/v1/rooms/${roomPath}/messages`, { credentials: "same-origin" });
      if (r.ok) (await r.json()).forEach(add);
    } catch (_) {
      // The live stream below replays what we missed.
    }
    if (!lastSeq) {
      // An empty room says what it is for and offers a first command.
      const hintTemplate = document.getElementById("empty-room");
      if (hintTemplate) stream.append(hintTemplate.content.cloneNode(true));
    }
    stream.scrollTop = stream.scrollHeight;
    // EventSource reconnects on its own and resumes with Last-Event-ID.
    const source = new EventSource(`/api/v1/rooms/${roomPath}/events?after=${lastSeq}`);
    source.onopen = () => {
      conn.textContent = "live";
      chat.dataset.live = "1";
    };
    source.onerror = () => {
      conn.textContent = "reconnecting…";
      chat.dataset.live = "";
    };
    source.onmessage = (message) => add(JSON.parse(message.data));
  }

  const options = Array.from(document.querySelectorAll("#commands option"));
  function hint() {
    const text = input.value.trim().toLowerCase();
    let best = null;
    for (const o of options) {
      const v = o.value.toLowerCase();
      if ((text === v || text.startsWith(`${v} `)) && (!best || v.length > best.value.length)) best = o;
    }
    usage.classList.remove("error");
    usage.textContent = best ? best.dataset.usage : "";
  }
  input.addEventListener("input", hint);
  stream.addEventListener("click", (event) => {
    const suggestion = event.target.closest("button[data-suggest]");
    if (!suggestion) return;
    input.value = suggestion.dataset.suggest;
    input.focus();
    hint();
  });
  if (input.value) {
    // Prefilled by ?say= (the catalog's "Run in chat"): ready to finish typing, not sent.
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    hint();
  }

  document.getElementById("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    usage.textContent = "";
    try {
      await say(room, text);
    } catch (error) {
      input.value = text;
      usage.classList.add("error");
      usage.textContent = error.message;
    }
    input.focus();
  });

  start();
})();
