// A lean scatter plot for tens of thousands of points.
//
// WebGL: one gl.POINTS draw call, per-point colour and size attributes, the view (pan/zoom)
// as a uniform so moving around never re-uploads data. When WebGL is unavailable the same
// API draws on a 2D canvas. Picking uses a uniform grid over the drawn points (CPU);
// box and lasso selection test points against the shape in data coordinates.

const VERTEX = `
attribute vec2 a_pos; attribute vec4 a_color; attribute float a_size;
uniform vec2 u_scale; uniform vec2 u_offset; uniform float u_px; uniform float u_grow;
varying vec4 v_color;
void main() {
  gl_Position = vec4(a_pos * u_scale + u_offset, 0.0, 1.0);
  gl_PointSize = a_size * u_grow * u_px;
  v_color = a_color;
}`;

const FRAGMENT = `
precision mediump float;
varying vec4 v_color; uniform float u_ring; uniform float u_dim;
void main() {
  vec2 c = gl_PointCoord * 2.0 - 1.0;
  float r = dot(c, c);
  if (r > 1.0) discard;
  float a = v_color.a * u_dim * (1.0 - smoothstep(0.75, 1.0, r));
  vec3 rgb = v_color.rgb;
  if (u_ring > 0.5 && r > 0.45) { rgb = vec3(0.08, 0.09, 0.12); a = 1.0 - smoothstep(0.85, 1.0, r); }
  gl_FragColor = vec4(rgb * a, a);
}`;

class GLRenderer {
  constructor(canvas) {
    const options = { antialias: false, premultipliedAlpha: true, preserveDrawingBuffer: true, alpha: true };
    const gl = canvas.getContext("webgl", options) || canvas.getContext("experimental-webgl", options);
    if (!gl) throw new Error("no WebGL");
    this.gl = gl;
    const program = gl.createProgram();
    for (const [type, src] of [[gl.VERTEX_SHADER, VERTEX], [gl.FRAGMENT_SHADER, FRAGMENT]]) {
      const shader = gl.createShader(type);
      gl.shaderSource(shader, src);
      gl.compileShader(shader);
      if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
      gl.attachShader(program, shader);
    }
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    this.program = program;
    this.loc = {};
    for (const name of ["a_pos", "a_color", "a_size"]) this.loc[name] = gl.getAttribLocation(program, name);
    for (const name of ["u_scale", "u_offset", "u_px", "u_grow", "u_ring", "u_dim"]) this.loc[name] = gl.getUniformLocation(program, name);
    this.sets = { main: this.makeSet(), ring: this.makeSet() };
    this.maxPoint = gl.getParameter(gl.ALIASED_POINT_SIZE_RANGE)[1];
  }

  makeSet() {
    const gl = this.gl;
    return { pos: gl.createBuffer(), color: gl.createBuffer(), size: gl.createBuffer(), count: 0 };
  }

  upload(name, pos, color, size, count) {
    const gl = this.gl, set = this.sets[name];
    gl.bindBuffer(gl.ARRAY_BUFFER, set.pos); gl.bufferData(gl.ARRAY_BUFFER, pos.subarray(0, count * 2), gl.DYNAMIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, set.color); gl.bufferData(gl.ARRAY_BUFFER, color.subarray(0, count * 4), gl.DYNAMIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, set.size); gl.bufferData(gl.ARRAY_BUFFER, size.subarray(0, count), gl.DYNAMIC_DRAW);
    set.count = count;
  }

  draw(t, px, grow, dim) {
    const gl = this.gl, loc = this.loc;
    gl.viewport(0, 0, gl.canvas.width, gl.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(this.program);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.uniform2f(loc.u_scale, t.sx, t.sy);
    gl.uniform2f(loc.u_offset, t.ox, t.oy);
    gl.uniform1f(loc.u_px, px);
    for (const [name, ring] of [["main", 0], ["ring", 1]]) {
      const set = this.sets[name];
      if (!set.count) continue;
      gl.uniform1f(loc.u_ring, ring);
      gl.uniform1f(loc.u_grow, ring ? Math.min(grow * 2.2, this.maxPoint / 8) : grow);
      gl.uniform1f(loc.u_dim, ring ? 1 : dim);
      gl.bindBuffer(gl.ARRAY_BUFFER, set.pos);
      gl.enableVertexAttribArray(loc.a_pos); gl.vertexAttribPointer(loc.a_pos, 2, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, set.color);
      gl.enableVertexAttribArray(loc.a_color); gl.vertexAttribPointer(loc.a_color, 4, gl.UNSIGNED_BYTE, true, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, set.size);
      gl.enableVertexAttribArray(loc.a_size); gl.vertexAttribPointer(loc.a_size, 1, gl.FLOAT, false, 0, 0);
      gl.drawArrays(gl.POINTS, 0, set.count);
    }
  }
}

class CanvasRenderer {
  constructor(canvas) {
    this.ctx = canvas.getContext("2d");
    this.sets = { main: null, ring: null };
  }

  upload(name, pos, color, size, count) {
    this.sets[name] = { pos: pos.slice(0, count * 2), color: color.slice(0, count * 4), size: size.slice(0, count), count };
  }

  draw(t, px, grow, dim) {
    const ctx = this.ctx, w = ctx.canvas.width, h = ctx.canvas.height;
    ctx.clearRect(0, 0, w, h);
    for (const name of ["main", "ring"]) {
      const set = this.sets[name];
      if (!set) continue;
      const ring = name === "ring";
      let last = "";
      for (let i = 0; i < set.count; i++) {
        const x = (set.pos[2 * i] * t.sx + t.ox + 1) * w / 2;
        const y = (1 - (set.pos[2 * i + 1] * t.sy + t.oy)) * h / 2;
        const r = (set.size[i] * grow * px * (ring ? 2.2 : 1)) / 2;
        if (ring) {
          ctx.fillStyle = "#14171f";
          ctx.beginPath(); ctx.arc(x, y, r, 0, 6.2832); ctx.fill();
        }
        const c = set.color.subarray(4 * i, 4 * i + 4);
        const style = `rgba(${c[0]},${c[1]},${c[2]},${((c[3] / 255) * (ring ? 1 : dim)).toFixed(3)})`;
        if (style !== last) { ctx.fillStyle = style; last = style; }
        const rr = ring ? r * 0.6 : r;
        if (rr < 2.5) ctx.fillRect(x - rr, y - rr, rr * 2, rr * 2);
        else { ctx.beginPath(); ctx.arc(x, y, rr, 0, 6.2832); ctx.fill(); }
      }
    }
  }
}

export class Scatter {
  /**
   * @param {HTMLElement} el container; gets data-point-count, data-total, data-renderer
   * @param {{onHover?, onClick?, onSelect?, renderer?}} options callbacks get point indices
   */
  constructor(el, options = {}) {
    this.el = el;
    this.options = options;
    this.canvas = document.createElement("canvas");
    this.canvas.dataset.testid = "map-canvas";
    el.appendChild(this.canvas);
    this.overlay = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    this.overlay.classList.add("overlay");
    el.appendChild(this.overlay);
    this.renderer = null;
    if (options.renderer !== "canvas") {
      try { this.renderer = new GLRenderer(this.canvas); this.kind = "webgl"; } catch (err) {
        console.info("samplescope: WebGL unavailable, drawing on a 2D canvas:", err.message);
      }
    }
    if (!this.renderer) {
      // A canvas that had a failed WebGL attempt can still give a 2D context, but be safe.
      this.canvas.remove();
      this.canvas = document.createElement("canvas");
      this.canvas.dataset.testid = "map-canvas";
      el.insertBefore(this.canvas, this.overlay);
      this.renderer = new CanvasRenderer(this.canvas);
      this.kind = "canvas2d";
    }
    el.dataset.renderer = this.kind;
    this.n = 0; this.drawn = 0; this.tool = "pan"; this.dim = 1;
    this.view = { cx: 0, cy: 0, scale: 1 };
    this.home = { cx: 0, cy: 0, scale: 1 };
    this.pending = false;
    this.resize();
    new ResizeObserver(() => { this.resize(); this.requestDraw(); }).observe(el);
    this.bindEvents();
  }

  // --- data -------------------------------------------------------------------------------

  /** x, y: Float32Array of every point, in data coordinates; keepView: do not refit the view
   * (new detail points joined the same map). */
  setPositions(x, y, keepView = false) {
    this.x = x; this.y = y; this.n = x.length;
    if (keepView && this.bounds) { this.el.dataset.total = String(this.n); return; }
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < this.n; i++) {
      const a = x[i], b = y[i];
      if (a < x0) x0 = a; if (a > x1) x1 = a; if (b < y0) y0 = b; if (b > y1) y1 = b;
    }
    if (!isFinite(x0)) { x0 = y0 = 0; x1 = y1 = 1; }
    this.bounds = { x0, x1, y0, y1 };
    this.fit();
    this.el.dataset.total = String(this.n);
  }

  fit() {
    const { x0, x1, y0, y1 } = this.bounds;
    const w = this.width, h = this.height, pad = 0.06;
    const scale = Math.min(w / ((x1 - x0 || 1) * (1 + 2 * pad)), h / ((y1 - y0 || 1) * (1 + 2 * pad)));
    this.home = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, scale };
    this.view = { ...this.home };
  }

  resetView() { this.fit(); this.requestDraw(); this.viewChanged(); }

  /** The data rectangle on screen: [x0, x1, y0, y1]. */
  visibleBox() {
    const [x0, y1] = this.toData(0, 0), [x1, y0] = this.toData(this.width, this.height);
    return [x0, x1, y0, y1];
  }

  /** How far the view is zoomed in from the whole map (1: the whole map). */
  zoom() { return this.view.scale / this.home.scale; }

  viewChanged() { if (this.options.onView) this.options.onView(); }

  /**
   * order: Uint32Array of point indices to draw, in drawing order (later on top);
   * rgba: Uint8Array(4 * n) per point; size: Float32Array(n) in CSS pixels.
   */
  setStyle(order, rgba, size) {
    const m = order.length;
    const pos = new Float32Array(m * 2), color = new Uint8Array(m * 4), sz = new Float32Array(m);
    for (let j = 0; j < m; j++) {
      const i = order[j];
      pos[2 * j] = this.x[i]; pos[2 * j + 1] = this.y[i];
      color[4 * j] = rgba[4 * i]; color[4 * j + 1] = rgba[4 * i + 1];
      color[4 * j + 2] = rgba[4 * i + 2]; color[4 * j + 3] = rgba[4 * i + 3];
      sz[j] = size[i];
    }
    this.renderer.upload("main", pos, color, sz, m);
    this.order = order; this.rgba = rgba; this.size = size;
    this.drawn = m;
    this.buildGrid();
    this.el.dataset.pointCount = String(m);
    this.requestDraw();
  }

  /** Points drawn on top with a dark ring (e.g. similar samples); [] to clear. */
  setHighlight(indices) {
    const m = indices.length;
    const pos = new Float32Array(m * 2), color = new Uint8Array(m * 4), sz = new Float32Array(m);
    indices.forEach((i, j) => {
      pos[2 * j] = this.x[i]; pos[2 * j + 1] = this.y[i];
      for (let c = 0; c < 3; c++) color[4 * j + c] = this.rgba ? this.rgba[4 * i + c] : 80;
      color[4 * j + 3] = 255;
      sz[j] = 5;
    });
    this.renderer.upload("ring", pos, color, sz, m);
    this.el.dataset.highlightCount = String(m);
    this.requestDraw();
  }

  /** 1: everything at full strength; below 1 fades the main set (e.g. behind a selection). */
  setDim(dim) { this.dim = dim; this.requestDraw(); }

  // --- drawing ----------------------------------------------------------------------------

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const r = this.el.getBoundingClientRect();
    this.width = Math.max(1, r.width); this.height = Math.max(1, r.height); this.dpr = dpr;
    this.canvas.width = Math.round(this.width * dpr);
    this.canvas.height = Math.round(this.height * dpr);
    if (this.bounds && !this.moved) this.fit();
  }

  transform() {
    const { cx, cy, scale } = this.view;
    const sx = (2 * scale) / this.width, sy = (2 * scale) / this.height;
    return { sx, sy, ox: -cx * sx, oy: -cy * sy };
  }

  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    if (!this.n) return;
    const grow = Math.min(4, Math.max(1, Math.sqrt(this.view.scale / this.home.scale)));
    this.renderer.draw(this.transform(), this.dpr, grow, this.dim);
    this.el.dataset.drawnCount = String(this.drawn);
    if (this.options.onDraw) this.options.onDraw(this.drawn);
  }

  // --- coordinates and picking ------------------------------------------------------------

  /** Container pixels of point i. */
  toScreen(i) {
    const { cx, cy, scale } = this.view;
    return [(this.x[i] - cx) * scale + this.width / 2, this.height / 2 - (this.y[i] - cy) * scale];
  }

  toData(px, py) {
    const { cx, cy, scale } = this.view;
    return [cx + (px - this.width / 2) / scale, cy - (py - this.height / 2) / scale];
  }

  local(event) {
    const r = this.el.getBoundingClientRect();
    return [event.clientX - r.left, event.clientY - r.top];
  }

  buildGrid() {
    const { x0, x1, y0, y1 } = this.bounds;
    const g = 128, order = this.order, m = order.length;
    const fx = g / ((x1 - x0) || 1), fy = g / ((y1 - y0) || 1);
    const cell = new Int32Array(m), start = new Int32Array(g * g + 1);
    for (let j = 0; j < m; j++) {
      const i = order[j];
      const cx = Math.min(g - 1, Math.max(0, Math.floor((this.x[i] - x0) * fx)));
      const cy = Math.min(g - 1, Math.max(0, Math.floor((this.y[i] - y0) * fy)));
      cell[j] = cy * g + cx; start[cell[j] + 1]++;
    }
    for (let c = 0; c < g * g; c++) start[c + 1] += start[c];
    const fill = start.slice(0, g * g), items = new Uint32Array(m);
    for (let j = 0; j < m; j++) items[fill[cell[j]]++] = order[j];
    this.grid = { g, fx, fy, start, items };
  }

  /** Index of the drawn point under (px, py) in container pixels, or -1. */
  pick(px, py) {
    if (!this.grid || !this.drawn) return -1;
    const [dx, dy] = this.toData(px, py);
    const { g, fx, fy, start, items } = this.grid;
    const { x0, y0 } = this.bounds;
    const grow = Math.min(4, Math.max(1, Math.sqrt(this.view.scale / this.home.scale)));
    const radius = (Math.max(3, 3 * grow) + 3) / this.view.scale;
    const cx0 = Math.max(0, Math.floor((dx - radius - x0) * fx)), cx1 = Math.min(g - 1, Math.floor((dx + radius - x0) * fx));
    const cy0 = Math.max(0, Math.floor((dy - radius - y0) * fy)), cy1 = Math.min(g - 1, Math.floor((dy + radius - y0) * fy));
    let best = -1, bestD = radius * radius;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * g + cx;
        for (let k = start[c]; k < start[c + 1]; k++) {
          const i = items[k], ex = this.x[i] - dx, ey = this.y[i] - dy, d = ex * ex + ey * ey;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  /** Drawn points inside a polygon given in container pixels. */
  inside(polygon) {
    const pts = polygon.map(([px, py]) => this.toData(px, py));
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const [a, b] of pts) { x0 = Math.min(x0, a); x1 = Math.max(x1, a); y0 = Math.min(y0, b); y1 = Math.max(y1, b); }
    const out = [];
    for (const i of this.order) {
      const x = this.x[i], y = this.y[i];
      if (x < x0 || x > x1 || y < y0 || y > y1) continue;
      let inPoly = false;
      for (let a = 0, b = pts.length - 1; a < pts.length; b = a++) {
        const [xa, ya] = pts[a], [xb, yb] = pts[b];
        if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inPoly = !inPoly;
      }
      if (inPoly) out.push(i);
    }
    return out;
  }

  // --- interaction ------------------------------------------------------------------------

  setTool(tool) { this.tool = tool; this.el.dataset.tool = tool; }

  bindEvents() {
    const el = this.el;
    let drag = null, hoverFrame = 0;
    el.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      el.setPointerCapture(e.pointerId);
      const p = this.local(e);
      drag = { start: p, last: p, path: [p], moved: false, view: { ...this.view } };
    });
    el.addEventListener("pointermove", (e) => {
      const p = this.local(e);
      if (!drag) {
        if (hoverFrame) return;
        hoverFrame = requestAnimationFrame(() => {
          hoverFrame = 0;
          if (this.options.onHover) this.options.onHover(this.pick(...p), e.clientX, e.clientY);
        });
        return;
      }
      if (Math.hypot(p[0] - drag.start[0], p[1] - drag.start[1]) > 3) drag.moved = true;
      if (this.tool === "pan") {
        this.view.cx = drag.view.cx - (p[0] - drag.start[0]) / this.view.scale;
        this.view.cy = drag.view.cy + (p[1] - drag.start[1]) / this.view.scale;
        this.moved = true;
        this.requestDraw();
      } else {
        drag.path.push(p);
        this.drawShape(drag);
      }
      if (this.options.onHover) this.options.onHover(-1);
    });
    el.addEventListener("pointerup", (e) => {
      if (!drag) return;
      const d = drag; drag = null;
      this.overlay.innerHTML = "";
      if (d.moved && this.tool === "pan") this.viewChanged();
      if (!d.moved) {
        const i = this.pick(...this.local(e));
        if (this.options.onClick) this.options.onClick(i);
        return;
      }
      if (this.tool === "box" || this.tool === "lasso") {
        const end = this.local(e);
        const poly = this.tool === "box"
          ? [d.start, [end[0], d.start[1]], end, [d.start[0], end[1]]]
          : d.path;
        if (poly.length >= 3 && this.options.onSelect) {
          this.options.onSelect(this.inside(poly), poly.map(([px, py]) => this.toData(px, py)));
        }
      }
    });
    el.addEventListener("pointerleave", () => { if (!drag && this.options.onHover) this.options.onHover(-1); });
    el.addEventListener("wheel", (e) => {
      e.preventDefault();
      const p = this.local(e);
      const [dx, dy] = this.toData(...p);
      const f = Math.exp(-e.deltaY * 0.0015);
      const scale = Math.min(this.home.scale * 400, Math.max(this.home.scale / 4, this.view.scale * f));
      this.view.scale = scale;
      this.view.cx = dx - (p[0] - this.width / 2) / scale;
      this.view.cy = dy + (p[1] - this.height / 2) / scale;
      this.moved = true;
      this.requestDraw();
      this.viewChanged();
    }, { passive: false });
    el.addEventListener("dblclick", () => this.resetView());
  }

  drawShape(drag) {
    const ns = "http://www.w3.org/2000/svg";
    this.overlay.innerHTML = "";
    const shape = document.createElementNS(ns, this.tool === "box" ? "rect" : "polygon");
    if (this.tool === "box") {
      const [a, b] = drag.start, [c, d] = drag.path[drag.path.length - 1];
      shape.setAttribute("x", Math.min(a, c)); shape.setAttribute("y", Math.min(b, d));
      shape.setAttribute("width", Math.abs(c - a)); shape.setAttribute("height", Math.abs(d - b));
    } else {
      shape.setAttribute("points", drag.path.map((p) => p.join(",")).join(" "));
    }
    shape.setAttribute("fill", "rgba(79,70,229,0.08)");
    shape.setAttribute("stroke", "#4f46e5");
    shape.setAttribute("stroke-dasharray", "4 3");
    this.overlay.appendChild(shape);
  }
}
