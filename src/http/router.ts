/**
 * Route table: exact paths and `{param}` templates. An unknown path is 404 and a known path with
 * the wrong method 405 with `Allow`. The route template (not the raw path) is what metrics see,
 * so a scan of random paths adds no series beyond `other`.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Exchange } from './respond';

export type Handler = (x: Exchange, req: HttpRequest, params: Record<string, string>) => void;

interface Route {
  template: string;
  segments: string[] | null;
  methods: Map<string, Handler>;
}

export interface Match {
  route: Route | null;
  params: Record<string, string>;
}

const NO_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>;

export class Router {
  private readonly exact = new Map<string, Route>();
  private readonly templated: Route[] = [];

  on(method: string, template: string, handler: Handler): this {
    let route = this.exact.get(template) ?? this.templated.find((r) => r.template === template);
    if (!route) {
      const templatedPath = template.includes('{');
      route = { template, segments: templatedPath ? template.split('/') : null, methods: new Map() };
      if (templatedPath) this.templated.push(route);
      else this.exact.set(template, route);
    }
    route.methods.set(method.toUpperCase(), handler);
    return this;
  }

  match(path: string): Match {
    const route = this.exact.get(path);
    if (route) return { route, params: NO_PARAMS };
    if (this.templated.length === 0) return { route: null, params: NO_PARAMS };
    const parts = path.split('/');
    for (const r of this.templated) {
      const segs = r.segments!;
      if (segs.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length; i++) {
        const s = segs[i]!;
        const p = parts[i]!;
        if (s.startsWith('{') && s.endsWith('}')) {
          if (p === '') { ok = false; break; }
          try {
            params[s.slice(1, -1)] = decodeURIComponent(p);
          } catch {
            ok = false;
            break;
          }
        } else if (s !== p) { ok = false; break; }
      }
      if (ok) return { route: r, params };
    }
    return { route: null, params: NO_PARAMS };
  }

  /** Every method and template registered, for tests that must cover them all. */
  routes(): Array<{ method: string; template: string }> {
    const out: Array<{ method: string; template: string }> = [];
    for (const r of [...this.exact.values(), ...this.templated]) for (const method of r.methods.keys()) out.push({ method, template: r.template });
    return out;
  }

  static allow(route: Route): string {
    return [...route.methods.keys()].sort().join(', ');
  }
}

export type { HttpResponse };
