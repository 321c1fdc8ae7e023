// HeadInfo objects of closed client connections, reused: their typed arrays live outside the JS heap
// and would otherwise wait for a full GC (measured: megabytes of RSS under connection churn).

import { HeadInfo } from './head-parser';

const freeHeads: HeadInfo[] = [];

export function takeHeadInfo(): HeadInfo {
  return freeHeads.pop() ?? new HeadInfo();
}

export function giveHeadInfo(h: HeadInfo): void {
  if (freeHeads.length < 256) {
    h.reset(0);
    freeHeads.push(h);
  }
}
