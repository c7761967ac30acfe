/**
 * An index of topic filters by level, so that finding the first rule whose pattern matches a topic
 * costs in proportion to the topic's depth, not to the number of rules (5,000 rules cost about
 * what 50 do). Each node keeps the rule indices, in ascending order, of the patterns that end at
 * it (`exact`) or end with `#` below it (`rest`); a lookup walks the literal child, the `+` child
 * and the `#` list of each level and keeps the smallest index the session accepts.
 *
 * `$` topics are matched by no wildcard at the first level [MQTT-4.7.2-1], as in topicMatches.
 */
import { fnv1aString } from '../protocol/fnv.js'

const DOLLAR = 0x24

class TrieNode {
  /** This node's level (the literal it was reached by; '' for the root and `+` nodes). */
  readonly level: string
  /** Next child of the same parent whose level has the same hash. */
  sameHash: TrieNode | null = null
  /** Literal children by fnv1aString(level). */
  children: Map<number, TrieNode> | null = null
  plus: TrieNode | null = null
  /** Rules whose pattern ends exactly at this node. */
  exact: number[] | null = null
  /** Rules whose pattern is this node's path followed by `/#`: they match this level and all below. */
  rest: number[] | null = null

  constructor(level: string) {
    this.level = level
  }

  /** The literal child for `topic[start, end)`, or undefined. Allocates nothing. */
  child(topic: string, start: number, end: number): TrieNode | undefined {
    let node = this.children!.get(fnv1aString(topic, start, end))
    const length = end - start
    while (node !== undefined) {
      const level = node.level
      if (level.length === length) {
        let i = 0
        while (i < length && level.charCodeAt(i) === topic.charCodeAt(start + i)) i++
        if (i === length) return node
      }
      node = node.sameHash ?? undefined
    }
    return undefined
  }

  addChild(level: string): TrieNode {
    const existing = this.children === null ? undefined : this.child(level, 0, level.length)
    if (existing !== undefined) return existing
    const children = this.children ??= new Map()
    const node = new TrieNode(level)
    const hash = fnv1aString(level, 0, level.length)
    node.sameHash = children.get(hash) ?? null
    children.set(hash, node)
    return node
  }
}

/** The first index in ascending `list` below `best` that `accept` allows, or `best`. */
function firstAccepted(list: number[] | null, accept: Uint8Array, best: number): number {
  if (list === null) return best
  for (let i = 0; i < list.length; i++) {
    const index = list[i]!
    if (index >= best) return best
    if (accept[index] === 1) return index
  }
  return best
}

export class TopicTrie {
  private readonly root = new TrieNode('')
  /** Rules whose whole pattern is `#`: every topic but `$` ones. */
  private all: number[] | null = null
  size = 0

  /** Adds a valid filter for rule `index`; indices must be added in ascending order. */
  add(pattern: string, index: number): void {
    this.size++
    if (pattern === '#') {
      (this.all ??= []).push(index)
      return
    }
    let node = this.root
    const levels = pattern.split('/')
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i]!
      if (level === '#') {
        (node.rest ??= []).push(index)
        return
      }
      if (level === '+') node = node.plus ??= new TrieNode('')
      else node = node.addChild(level)
    }
    (node.exact ??= []).push(index)
  }

  /**
   * The smallest rule index whose pattern matches `topic` and that `accept` allows (accept[i] === 1),
   * or `limit` when none below it does.
   */
  first(topic: string, accept: Uint8Array, limit: number): number {
    const dollar = topic.charCodeAt(0) === DOLLAR
    let best = dollar ? limit : firstAccepted(this.all, accept, limit)
    best = this.walk(this.root, topic, 0, accept, best, dollar)
    return best
  }

  private walk(node: TrieNode, topic: string, start: number, accept: Uint8Array, best: number, firstLevelDollar: boolean): number {
    // `node` stands for the levels before `start`; `start` is the beginning of the next level, or
    // topic.length + 1 when the topic is exhausted.
    if (start > topic.length) {
      // The topic ended at `node`: patterns ending here, and `…/#` ones (which also match their parent).
      best = firstAccepted(node.exact, accept, best)
      return firstAccepted(node.rest, accept, best)
    }
    const wildOk = !(start === 0 && firstLevelDollar)
    if (wildOk) best = firstAccepted(node.rest, accept, best)
    let end = topic.indexOf('/', start)
    if (end < 0) end = topic.length
    if (node.children !== null) {
      const child = node.child(topic, start, end)
      if (child !== undefined) best = this.walk(child, topic, end + 1, accept, best, firstLevelDollar)
    }
    if (wildOk && node.plus !== null) best = this.walk(node.plus, topic, end + 1, accept, best, firstLevelDollar)
    return best
  }
}
