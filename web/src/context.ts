// The services every screen shares, handed down through a preact context so that no module
// holds per-tab state of its own.

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { Api } from './api';
import { EventHub } from './events';

export interface Services {
  api: Api;
  events: EventHub;
}

export function createServices(): Services {
  const api = new Api();
  return { api, events: new EventHub(api) };
}

export const ServicesContext = createContext<Services | null>(null);

function useServices(): Services {
  const s = useContext(ServicesContext);
  if (!s) throw new Error('no ServicesContext provider above this component');
  return s;
}

export const useApi = (): Api => useServices().api;
export const useEvents = (): EventHub => useServices().events;
