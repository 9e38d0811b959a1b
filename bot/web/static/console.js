/* Waymark coordinator console.
 *
 * The pages are rendered on the server; this script keeps them live. It listens to
 * /console/api/events (server-sent events carrying ids only) and re-fetches JSON when
 * something changes, then re-renders the changed part.
 *
 * Safety: everything a person (or a coordinator) wrote is put in the page with
 * textContent or createTextNode, never innerHTML, so a message that looks like HTML
 * stays text. The console's Content-Security-Policy forbids inline script as well.
 */
(function () {
  "use strict";

  var API = "/console/api";
  var page = document.body.getAttribute("data-page");
  var $ = function (id) { return document.getElementById(id); };

  if (page === "login") {
    // GOV.UK: move focus to the error summary so it is read out first.
    var summary = document.querySelector(".error-summary");
    if (summary) { summary.focus(); }
    return;
  }

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  if (!csrf) { return; }
  var supervisor = document.body.getAttribute("data-supervisor") === "true";

  // ---------------------------------------------------------------- helpers

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function hiddenText(text) { return el("span", "visually-hidden", text); }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function HttpError(status, detail) {
    this.status = status;
    this.detail = detail;
  }

  function request(method, path, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    };
    if (method !== "GET") { options.headers["X-CSRF-Token"] = csrf; }
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(API + path, options).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/console/login");
        throw new HttpError(401, "Sign in again.");
      }
      if (response.ok) { return response.json(); }
      return response.json().catch(function () { return {}; }).then(function (data) {
        throw new HttpError(response.status,
          data && typeof data.detail === "string" ? data.detail : null);
      });
    });
  }

  var errorSummary = $("error-summary");
  var errorText = $("error-text");
  var statusBox = $("status");

  function showError(message) {
    statusBox.textContent = "";
    errorText.textContent = message;
    errorSummary.hidden = false;
    errorSummary.focus();
  }

  function clearError() {
    errorSummary.hidden = true;
    errorText.textContent = "";
  }

  function say(message) {
    clearError();
    statusBox.textContent = message;
  }

  function explain(err) {
    if (err instanceof HttpError) {
      if (err.detail) { return err.detail; }
      if (err.status === 403) { return "This form has expired. Reload the page and try again."; }
      return "Sorry, something went wrong. Try again.";
    }
    return "The console could not reach the server. Check your connection and try again.";
  }

  // One action at a time per button or form, so a double click does not send twice.
  var busy = {};
  function once(key, work) {
    if (busy[key]) { return; }
    busy[key] = true;
    var done = function () { busy[key] = false; };
    work().then(done, function (err) { done(); showError(explain(err)); });
  }

  // The same words as `waited` in bot/handoff/console.py.
  function waited(seconds) {
    var minutes = Math.floor(seconds / 60);
    if (minutes < 1) { return "under a minute"; }
    if (minutes < 60) { return minutes + " minute" + (minutes === 1 ? "" : "s"); }
    var hours = Math.floor(minutes / 60);
    var rest = minutes % 60;
    var text = hours + " hour" + (hours === 1 ? "" : "s");
    return rest ? text + " " + rest + " minute" + (rest === 1 ? "" : "s") : text;
  }

  var timeFormat = null;
  try {
    timeFormat = new Intl.DateTimeFormat("en-GB", {
      day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
      hour12: false, timeZone: "Europe/London"
    });
  } catch (e) { timeFormat = null; }

  function when(iso) {
    if (!iso) { return ""; }
    var date = new Date(iso);
    if (!timeFormat || isNaN(date.getTime())) { return iso; }
    var parts = {};
    timeFormat.formatToParts(date).forEach(function (p) { parts[p.type] = p.value; });
    return parts.day + " " + parts.month + ", " + parts.hour + ":" + parts.minute;
  }

  function urgentTag(text) { return el("strong", "tag tag--red", text || "Urgent"); }

  // ---------------------------------------------------------------- live updates

  function listen(handlers) {
    if (!window.EventSource) { return; }
    var source = new EventSource(API + "/events");
    source.addEventListener("open", function () {
      // Whatever changed between the server rendering this page (or the last
      // connection dropping) and now was not sent to us: fetch it.
      if (handlers.reconnected) { handlers.reconnected(); }
    });
    ["queue", "message", "tasks"].forEach(function (type) {
      source.addEventListener(type, function (event) {
        var data = {};
        try { data = JSON.parse(event.data); } catch (e) { data = {}; }
        if (handlers[type]) { handlers[type](data); }
      });
    });
    source.addEventListener("signed_out", function () {
      source.close();
      window.location.assign("/console/login");
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream. A cheap signed-in check (it redirects to
        // sign in on 401), then listen again.
        setTimeout(function () {
          request("GET", "/canned").then(function () {
            listen(handlers);
            if (handlers.reconnected) { handlers.reconnected(); }
          }, function () {});
        }, 5000);
      }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // ---------------------------------------------------------------- queue page

  function queuePage() {
    var body = $("queue-body");
    var table = $("queue-table");
    var summary = $("queue-summary");
    var dutyButton = $("duty-button");
    var dutyText = $("duty-text");
    var fetchedAt = Date.now();

    function signature(item) {
      return [item.handoff_id, item.state, item.urgent, item.reason_text, item.channel_text,
        item.coordinator, item.escalated].join("|");
    }

    function waitingCell(item) {
      var cell = el("td", null, waited(item.waiting_seconds));
      cell.setAttribute("data-waiting", String(item.waiting_seconds));
      cell.setAttribute("aria-live", "off");  // the minutes tick: don't announce that
      return cell;
    }

    function queueRow(item) {
      var id = String(Number(item.handoff_id));
      var row = el("tr", "queue-row" + (item.urgent ? " queue-row--urgent" : ""));
      row.setAttribute("data-handoff-id", id);
      row.setAttribute("data-conversation-id", String(Number(item.conversation_id)));
      row.setAttribute("data-signature", signature(item));

      var link = el("a", null, "#" + id);
      link.href = "/console/handoffs/" + id;
      row.appendChild(el("td")).appendChild(link);

      var priority = el("td");
      if (item.urgent) { priority.appendChild(urgentTag()); } else { priority.textContent = "Normal"; }
      row.appendChild(priority);

      var reason = el("td", null, item.reason_text);
      if (item.escalated) {
        reason.appendChild(document.createTextNode(" "));
        reason.appendChild(el("strong", "tag tag--yellow", "Overdue"));
      }
      row.appendChild(reason);
      row.appendChild(el("td", null, item.channel_text));
      row.appendChild(waitingCell(item));
      row.appendChild(el("td", null,
        item.state === "queued" ? "Waiting" : "Claimed by " + (item.coordinator || "a coordinator")));

      var action = el("td");
      if (item.state === "queued") {
        var claim = el("button", "button button--small", "Claim");
        claim.type = "button";
        claim.setAttribute("data-claim", id);
        claim.appendChild(hiddenText(" handoff #" + id));
        action.appendChild(claim);
      } else {
        var open = el("a", null, "Open");
        open.href = "/console/handoffs/" + id;
        open.appendChild(hiddenText(" handoff #" + id));
        action.appendChild(open);
      }
      row.appendChild(action);
      return row;
    }

    function renderQueue(data) {
      var items = data.items || [];
      fetchedAt = Date.now();
      // The list holds the first few hundred; the counts are of every open handoff.
      var counts = data.counts || { waiting: 0, urgent: 0, claimed: 0 };
      var total = counts.waiting + counts.claimed;
      var text = items.length
        ? counts.waiting + " waiting" + (counts.urgent ? " (" + counts.urgent + " urgent)" : "") +
          ", " + counts.claimed + " claimed." +
          (items.length < total ? " Showing the first " + items.length + "." : "")
        : "Nobody is waiting.";
      if (summary.textContent !== text) { summary.textContent = text; }

      var before = Array.prototype.map.call(body.rows, function (r) {
        return r.getAttribute("data-signature");
      });
      var after = items.map(signature);
      if (before.join("\n") === after.join("\n")) {
        // Nothing changed but the minutes: don't rebuild (a live region would re-read it).
        items.forEach(function (item, i) {
          body.rows[i].querySelector("[data-waiting]")
            .setAttribute("data-waiting", String(item.waiting_seconds));
        });
        tick();
      } else {
        var rows = document.createDocumentFragment();
        items.forEach(function (item) { rows.appendChild(queueRow(item)); });
        body.textContent = "";
        body.appendChild(rows);
      }
      table.hidden = items.length === 0;
      setDuty(Boolean(data.on_duty));
    }

    // Server-rendered rows get their signatures from the first fetch.
    Array.prototype.forEach.call(body.rows, function (r) {
      r.setAttribute("data-signature", "");
      var cell = r.querySelector("[data-waiting]");
      if (cell) { cell.setAttribute("aria-live", "off"); }
    });

    function tick() {
      var elapsed = (Date.now() - fetchedAt) / 1000;
      Array.prototype.forEach.call(body.querySelectorAll("[data-waiting]"), function (cell) {
        var text = waited(Number(cell.getAttribute("data-waiting")) + elapsed);
        if (cell.textContent !== text) { cell.textContent = text; }
      });
    }
    setInterval(tick, 30000);

    var refreshQueue = debounce(function () {
      request("GET", "/queue").then(renderQueue).catch(function (err) { showError(explain(err)); });
    }, 200);

    body.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("[data-claim]") : null;
      if (!button) { return; }
      var id = button.getAttribute("data-claim");
      once("claim-" + id, function () {
        return request("POST", "/handoffs/" + encodeURIComponent(id) + "/claim")
          .then(function () { window.location.assign("/console/handoffs/" + encodeURIComponent(id)); })
          .catch(function (err) { refreshQueue(); throw err; });
      });
    });

    function setDuty(onDuty) {
      dutyButton.setAttribute("data-on-duty", onDuty ? "true" : "false");
      var label = onDuty ? "Go off duty" : "Go on duty";
      if (dutyButton.textContent !== label) { dutyButton.textContent = label; }
      var text = onDuty
        ? "You are on duty. You get alerts when someone asks for a person."
        : "You are off duty. You do not get alerts.";
      if (dutyText.textContent !== text) { dutyText.textContent = text; }
    }

    dutyButton.addEventListener("click", function () {
      var onDuty = dutyButton.getAttribute("data-on-duty") !== "true";
      once("duty", function () {
        return request("POST", "/duty", { on_duty: onDuty }).then(function (data) {
          setDuty(Boolean(data.on_duty));
          say(data.on_duty ? "You are now on duty." : "You are now off duty.");
        });
      });
    });

    // Tasks
    var taskList = $("task-list");
    var taskSummary = $("tasks-summary");

    function taskItem(task) {
      var id = String(Number(task.id));
      var li = el("li", "task" + (task.urgent ? " task--urgent" : ""));
      li.setAttribute("data-task-id", id);
      var title = el("h3", "task__title");
      if (task.urgent) {
        title.appendChild(urgentTag());
        title.appendChild(document.createTextNode(" "));
      }
      title.appendChild(document.createTextNode(task.kind_text));
      li.appendChild(title);
      li.appendChild(el("p", "task__detail", task.detail));
      var meta = "Task " + id;
      if (task.case_reference) { meta += ". Case " + task.case_reference; }
      if (task.conversation_id) { meta += ". Conversation " + task.conversation_id; }
      if (task.due_text) { meta += ". Due " + task.due_text; }
      li.appendChild(el("p", "hint task__meta", meta + "."));
      if (task.referral_id) {
        var link = el("a", "task__link", "Open the referral");
        link.href = "/console/referrals/" + encodeURIComponent(String(Number(task.referral_id)));
        link.appendChild(hiddenText(" #" + String(Number(task.referral_id))));
        var p = el("p", "task__detail");
        p.appendChild(link);
        li.appendChild(p);
      }
      var done = el("button", "button button--secondary button--small", "Mark as done");
      done.type = "button";
      done.setAttribute("data-done", id);
      done.appendChild(hiddenText(": task " + id));
      li.appendChild(done);
      return li;
    }

    function renderTasks(data) {
      var tasks = data.tasks || [];
      taskSummary.textContent = tasks.length
        ? tasks.length + " open task" + (tasks.length === 1 ? "" : "s") + "."
        : "No open tasks.";
      var items = document.createDocumentFragment();
      tasks.forEach(function (task) { items.appendChild(taskItem(task)); });
      taskList.textContent = "";
      taskList.appendChild(items);
    }

    var refreshTasks = debounce(function () {
      request("GET", "/tasks").then(renderTasks).catch(function (err) { showError(explain(err)); });
    }, 200);

    taskList.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("[data-done]") : null;
      if (!button) { return; }
      var id = button.getAttribute("data-done");
      once("task-" + id, function () {
        return request("POST", "/tasks/" + encodeURIComponent(id) + "/done").then(function () {
          say("Task " + id + " is done.");
          refreshTasks();
        }, function (err) { refreshTasks(); throw err; });
      });
    });

    // Take over a conversation from the assistant
    var takeOver = $("take-over");
    var takeOverInput = $("take-over-id");
    takeOver.addEventListener("submit", function (event) {
      event.preventDefault();
      var value = takeOverInput.value.trim();
      if (!/^[0-9]{1,12}$/.test(value)) {
        showError("Enter a conversation number, like 42.");
        $("take-over-group").classList.add("form-group--error");
        takeOverInput.setAttribute("aria-invalid", "true");
        return;
      }
      $("take-over-group").classList.remove("form-group--error");
      takeOverInput.removeAttribute("aria-invalid");
      once("take-over", function () {
        return request("POST", "/conversations/" + value + "/take-over").then(function (data) {
          window.location.assign("/console/handoffs/" + encodeURIComponent(String(data.handoff_id)));
        });
      });
    });

    listen({
      queue: refreshQueue,
      tasks: refreshTasks,
      reconnected: function () { refreshQueue(); refreshTasks(); }
    });
  }

  // ---------------------------------------------------------------- one handoff

  function lineKey(at, who, text) { return (at || "") + "|" + (who || "") + "|" + (text || ""); }

  function keyOf(li) {
    var text = li.querySelector(".line__text");
    return lineKey(li.getAttribute("data-at"), li.getAttribute("data-who"),
      text ? text.textContent : "");
  }

  function lineNode(line, transcript) {
    var li = el("li", transcript ? "line line--" + line.who : "note");
    li.setAttribute("data-at", line.at || "");
    li.setAttribute("data-who", line.who || "");
    var meta = el("p", "line__meta");
    meta.appendChild(el("span", "line__who", line.who_text || line.who));
    meta.appendChild(document.createTextNode(" "));
    var time = el("time", null, when(line.at));
    time.setAttribute("datetime", line.at || "");
    meta.appendChild(time);
    if (line.urgent) {
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(urgentTag("Safety message"));
    }
    li.appendChild(meta);
    li.appendChild(el("p", "line__text", line.text));
    return li;
  }

  /* Add only what is new, so the live region reads out new messages, not the whole
     list. The transcript is a moving window: older lines may drop off the top. */
  function renderLines(list, lines, transcript, emptyText) {
    var empty = list.querySelector(".line--empty, .note--empty");
    var current = Array.prototype.filter.call(list.children, function (li) {
      return li.hasAttribute("data-at");
    });
    var oldKeys = current.map(keyOf);
    var newKeys = lines.map(function (l) { return lineKey(l.at, l.who, l.text); });
    // The first old line that starts the new list: everything before it dropped off.
    var skip = oldKeys.length;
    for (var k = 0; k < oldKeys.length; k++) {
      var rest = oldKeys.slice(k);
      if (rest.length <= newKeys.length &&
          rest.every(function (key, i) { return key === newKeys[i]; })) { skip = k; break; }
    }
    for (var d = 0; d < skip; d++) { list.removeChild(current[d]); }
    var kept = oldKeys.length - skip;
    lines.slice(kept).forEach(function (line) { list.appendChild(lineNode(line, transcript)); });
    if (lines.length && empty && empty.parentNode) { empty.parentNode.removeChild(empty); }
    if (!lines.length && !list.children.length) {
      var placeholder = el("li", transcript ? "line line--empty" : "note note--empty");
      placeholder.appendChild(el("p", "line__text", emptyText));
      list.appendChild(placeholder);
    }
  }

  function handoffPage() {
    var packet = $("packet");
    var handoffId = packet.getAttribute("data-handoff-id");
    var conversationId = Number(packet.getAttribute("data-conversation-id"));
    var path = "/handoffs/" + encodeURIComponent(handoffId);
    var replyText = $("reply-text");

    function setText(id, text) {
      var node = $(id);
      if (node.textContent !== text) { node.textContent = text; }
    }

    function applyState(data) {
      var closed = data.state === "closed";
      var active = document.activeElement;
      $("claim-section").hidden = data.state !== "queued";
      $("reply-section").hidden = !(data.state === "claimed" && data.mine);
      $("manage-section").hidden = closed || !(data.mine || supervisor || data.state === "queued");
      $("transfer-form").hidden = closed || !(data.mine || supervisor);

      var state;
      if (closed) { state = "Closed. The assistant answers the person again."; }
      else if (data.state === "queued") { state = "Waiting for a coordinator."; }
      else if (data.mine) { state = "You have this conversation. Your messages go to the person."; }
      else { state = "Claimed by " + (data.coordinator || "another coordinator") + "."; }
      setText("state-text", state);

      var risk = $("risk-text");
      var urgent = data.urgent ? "true" : "false";
      if (risk.getAttribute("data-urgent") !== urgent) {
        risk.setAttribute("data-urgent", urgent);
        risk.textContent = "";
        if (data.urgent) {
          risk.appendChild(urgentTag());
          risk.appendChild(document.createTextNode(
            " High risk: they may be in danger or at risk of self-harm. The 999 reply went out."));
        } else {
          risk.textContent = "Standard risk.";
        }
      }
      $("risk-panel").classList.toggle("panel--urgent", Boolean(data.urgent));
      setText("summary", data.summary || "");

      // If the focused control was just hidden, keep focus somewhere sensible.
      if (active && active !== document.body && active.offsetParent === null) {
        if (!$("reply-section").hidden) { replyText.focus(); }
        else { $("main-content").focus(); }
      }
    }

    function renderPacket(data) {
      applyState(data);
      renderLines($("transcript"), data.transcript || [], true, "No messages yet.");
      renderLines($("notes"), data.notes || [], false, "No notes yet.");
      return data;
    }

    var refresh = function () {
      return request("GET", path).then(renderPacket);
    };
    var refreshSoon = debounce(function () {
      refresh().catch(function (err) { showError(explain(err)); });
    }, 200);

    function act(key, action, body, message, after) {
      once(key, function () {
        return request("POST", path + "/" + action, body).then(function (data) {
          say(typeof message === "function" ? message(data) : message);
          if (after) { after(data); }
          return refresh();
        });
      });
    }

    $("claim-button").addEventListener("click", function () {
      act("claim", "claim", undefined,
        "You have claimed this conversation. The person has been told your name.");
    });

    var cannedUse = $("canned-use");
    if (cannedUse) {
      cannedUse.addEventListener("click", function () {
        var select = $("canned-select");
        var option = select.options[select.selectedIndex];
        if (!option || !option.value) {
          showError("Choose a canned reply first.");
          select.focus();
          return;
        }
        replyText.value = option.getAttribute("data-text") || "";
        clearError();
        replyText.focus();
      });
    }

    $("reply-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = replyText.value.trim();
      if (!text) {
        showError("Write a message first.");
        replyText.focus();
        return;
      }
      act("reply", "reply", { text: text }, "Message sent.", function () { replyText.value = ""; });
    });

    $("note-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var input = $("note-text");
      var text = input.value.trim();
      if (!text) {
        showError("Write the note first.");
        input.focus();
        return;
      }
      act("note", "note", { text: text }, "Note saved.", function () { input.value = ""; });
    });

    $("transfer-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var input = $("transfer-to");
      var to = input.value.trim();
      if (!to) {
        showError("Enter the username of the coordinator to transfer to.");
        input.focus();
        return;
      }
      act("transfer", "transfer", { to: to }, function (data) {
        return "Transferred to " + data.to_name + ".";
      }, function () { input.value = ""; });
    });

    $("close-form").addEventListener("submit", function (event) {
      event.preventDefault();
      act("close", "close", { outcome: $("close-outcome").value },
        "Conversation closed. The person is back with the assistant.");
    });

    $("back-button").addEventListener("click", function () {
      act("back", "back", undefined, "Handed back to the assistant.");
    });

    listen({
      queue: refreshSoon,
      message: function (data) {
        if (Number(data.conversation_id) === conversationId) { refreshSoon(); }
      },
      reconnected: refreshSoon
    });
  }

  // ---------------------------------------------------------------- canned replies

  function cannedPage() {
    Array.prototype.forEach.call(document.querySelectorAll("form.canned"), function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var id = form.getAttribute("data-canned-id");
        var title = form.elements.title.value.trim();
        var text = form.elements.text.value.trim();
        if (!title || !text) {
          showError("Give the reply a title and a message.");
          (title ? form.elements.text : form.elements.title).focus();
          return;
        }
        once("canned-" + (id || "new"), function () {
          var body = { title: title, text: text };
          var sent = id
            ? request("PUT", "/canned/" + encodeURIComponent(id), body)
            : request("POST", "/canned", body);
          return sent.then(function (data) {
            if (!id) {
              window.location.assign("/console/canned?added=1");
              return;
            }
            var heading = $("canned-heading-" + id);
            if (heading) { heading.textContent = data.title; }
            say("Saved: " + data.title + ".");
          });
        });
      });
    });
  }

  if (page === "queue") { queuePage(); }
  else if (page === "handoff") { handoffPage(); }
  else if (page === "canned") { cannedPage(); }
})();
