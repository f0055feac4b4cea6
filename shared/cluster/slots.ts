// Rooms and users map to a fixed number of slots; each slot has one owning router at a time.
import { fnv1a } from './encode.js';

export const DEFAULT_SLOTS = 64;

/** Rooms and users share the slot space; the prefix keeps a room and a user of the same name apart. */
export const roomSlot = (room: string, slots: number): number => fnv1a('r/' + room) % slots;
export const userSlot = (user: string, slots: number): number => fnv1a('u/' + user) % slots;
