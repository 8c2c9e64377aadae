// Listening-test page (slm-eval listen). One trial at a time; every sample must be played to the
// end before the rating controls unlock; answers go to the server (mode "server") or to
// localStorage with a download at the end (mode "static"). A reload resumes at the first
// unanswered trial. No external resources.
"use strict";
(function () {
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const scale = cfg.scale;
  let rater = cfg.rater;
  let plan = cfg.plan || null;
  let answers = cfg.answers || {};
  let current = null;
  let played = new Set();
  let touched = new Set();
  let shownAt = 0;

  const storageKey = () => "slm-eval-listen:" + cfg.study_id + ":" + rater;

  function saveLocal() {
    localStorage.setItem(storageKey(), JSON.stringify(answers));
  }

  function answersFile() {
    return {format: "slm-eval-listen-answers", study_id: cfg.study_id, rater: rater, answers: answers};
  }

  async function submit(body) {
    if (cfg.mode === "server") {
      const r = await fetch(cfg.api_base + encodeURIComponent(rater) + "/answer", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(body),
      });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(data.error || ("server answered " + r.status));
      answers[body.trial] = data.record;
    } else {
      answers[body.trial] = {
        trial: body.trial, value: body.value, shown: current.stimuli.slice(),
        elapsed_ms: body.elapsed_ms, time: new Date().toISOString(),
      };
      saveLocal();
    }
  }

  function labelFor(i, n) {
    if (cfg.test === "mushra") return "Sample " + (i + 1);
    if (n === 2) return cfg.test === "ab" ? "Sample " + "AB"[i] : (i === 0 ? "First" : "Second");
    return "Sample";
  }

  function player(stim, name, withSlider) {
    const div = document.createElement("div");
    div.className = "player";
    div.dataset.stim = stim;
    const nm = document.createElement("span");
    nm.className = "name";
    nm.textContent = name;
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "auto";
    audio.src = cfg.audio[stim];
    audio.setAttribute("aria-label", name);
    audio.addEventListener("ended", () => {
      played.add(stim);
      div.classList.add("played");
      update();
    });
    div.append(nm, audio);
    if (withSlider) {
      const range = document.createElement("input");
      range.type = "range";
      range.min = 0; range.max = 100; range.step = 1; range.value = 50;
      range.name = "score-" + stim;
      range.dataset.stim = stim;
      range.setAttribute("aria-label", "score of " + name + " (0 to 100)");
      range.disabled = true;
      const out = document.createElement("output");
      out.textContent = "\u2014";  // unrated: an untouched slider never counts as a score
      range.addEventListener("input", () => {
        touched.add(stim);
        out.textContent = range.value;
        update();
      });
      div.append(range, out);
    }
    return div;
  }

  function radios(options) {
    const fs = document.createElement("fieldset");
    const lg = document.createElement("legend");
    lg.textContent = "Your rating";
    fs.append(lg);
    for (const [value, text] of options) {
      const lab = document.createElement("label");
      const inp = document.createElement("input");
      inp.type = "radio"; inp.name = "score"; inp.value = String(value);
      inp.addEventListener("change", update);
      lab.append(inp, " " + text);
      fs.append(lab);
    }
    fs.disabled = true;
    return fs;
  }

  function mustPlay() {
    const s = new Set(current.stimuli);
    if (current.reference) s.add(current.reference);
    return s;
  }

  function allPlayed() {
    for (const s of mustPlay()) if (!played.has(s)) return false;
    return true;
  }

  function value() {
    if (cfg.test === "mushra") {
      const v = {};
      for (const s of current.stimuli) {
        if (!touched.has(s)) return null;
        v[s] = Number(document.querySelector('input[data-stim="' + s + '"]').value);
      }
      return v;
    }
    const c = document.querySelector('input[name="score"]:checked');
    if (!c) return null;
    return cfg.test === "ab" ? c.value : Number(c.value);
  }

  function update() {
    const ok = allPlayed();
    $("play-note").hidden = ok;
    for (const el of document.querySelectorAll("#rating fieldset, .player input[type=range]")) el.disabled = !ok;
    $("next").disabled = !(ok && value() !== null);
  }

  function progress() {
    const done = plan.filter((t) => answers[t.id]).length;
    $("progress").max = plan.length;
    $("progress").value = done;
    $("progress-text").textContent = done + " of " + plan.length + " answered";
    return done;
  }

  function show() {
    const done = progress();
    current = plan.find((t) => !answers[t.id]) || null;
    $("rater-pick").hidden = true;
    if (!current) {
      $("trial").hidden = true;
      $("done").hidden = false;
      $("done-static").hidden = cfg.mode !== "static";
      return;
    }
    played = new Set();
    touched = new Set();
    $("trial").hidden = false;
    $("trial").dataset.trial = current.id;
    $("question").textContent = "Trial " + (done + 1) + ": " + scale.question;
    $("prompt").hidden = !current.prompt;
    $("prompt").textContent = current.prompt || "";
    const players = $("players");
    players.replaceChildren();
    if (current.reference) players.append(player(current.reference, "Reference", false));
    const n = current.stimuli.length;
    current.stimuli.forEach((s, i) => players.append(player(s, labelFor(i, n), cfg.test === "mushra")));
    const rating = $("rating");
    rating.replaceChildren();
    const labels = Object.entries(scale.labels).map(([k, t]) => [Number(k), t]).sort((a, b) => b[0] - a[0]);
    if (cfg.test === "mushra") {
      const bands = document.createElement("div");
      bands.className = "bands";
      // BS.1534 bands of the 0-100 scale
      bands.textContent = "Bad 0\u201320 \u00b7 Poor 20\u201340 \u00b7 Fair 40\u201360 \u00b7 Good 60\u201380 \u00b7 Excellent 80\u2013100";
      rating.append(bands);
    } else if (cfg.test === "ab") {
      rating.append(radios(current.stimuli.map((s, i) => [s, labelFor(i, 2)])));
    } else {
      rating.append(radios(labels.map(([k, t]) => [k, (cfg.test === "cmos" && k > 0 ? "+" : "") + k + " " + t])));
    }
    $("error").hidden = true;
    shownAt = performance.now();
    update();
  }

  $("rating-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = value();
    if (v === null || !allPlayed()) return;
    $("next").disabled = true;
    try {
      await submit({
        trial: current.id, value: v, played: Array.from(mustPlay()),
        elapsed_ms: Math.round(performance.now() - shownAt),
      });
      show();
      $("question").focus && $("question").setAttribute("tabindex", "-1");
      $("question").focus();
    } catch (e) {
      $("error").textContent = "Not saved: " + e.message;
      $("error").hidden = false;
      update();
    }
  });

  $("download").addEventListener("click", () => {
    const blob = new Blob([JSON.stringify(answersFile(), null, 1)], {type: "application/json"});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "answers_" + cfg.study_id + "_" + rater + ".json";
    document.body.append(a);
    a.click();
    a.remove();
  });

  function startStatic(r) {
    rater = r;
    plan = cfg.plans[r];
    answers = JSON.parse(localStorage.getItem(storageKey()) || "{}");
    show();
  }

  if (cfg.mode === "static") {
    const fromHash = new URLSearchParams(location.hash.slice(1)).get("rater");
    if (fromHash && cfg.plans[fromHash]) {
      startStatic(fromHash);
    } else {
      const sel = $("rater-select");
      for (const r of Object.keys(cfg.plans)) {
        const o = document.createElement("option");
        o.value = r; o.textContent = r;
        sel.append(o);
      }
      $("rater-pick").hidden = false;
      $("rater-form").addEventListener("submit", (ev) => {
        ev.preventDefault();
        location.hash = "rater=" + sel.value;
        startStatic(sel.value);
      });
    }
  } else {
    show();
  }
})();
