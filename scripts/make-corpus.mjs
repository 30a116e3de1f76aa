// Writes data/train/corpus.txt: the training corpus of train/ (README "Training"). Text made by
// a small seeded grammar written for Hearth, so it is ours to dedicate to the public domain
// (CC0) and needs no download. Same seed, same bytes: `node scripts/make-corpus.mjs` reproduces
// the committed file exactly.
import { writeFileSync } from 'node:fs';

const TARGET_BYTES = 200 * 1024;
let state = 20261202;
const rand = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const W = {
  name: ['Ada', 'Bram', 'Cora', 'Dov', 'Edda', 'Finn', 'Greta', 'Hal', 'Ines', 'Jory', 'Kai', 'Lena'],
  adj: [
    'old',
    'quiet',
    'bright',
    'cold',
    'warm',
    'small',
    'long',
    'green',
    'grey',
    'patient',
    'busy',
    'gentle',
  ],
  noun: [
    'hearth',
    'river',
    'mill',
    'lamp',
    'road',
    'garden',
    'bridge',
    'window',
    'kettle',
    'field',
    'forge',
    'orchard',
    'boat',
    'market',
    'letter',
    'clock',
  ],
  place: [
    'by the river',
    'in the village',
    'under the hill',
    'near the mill',
    'at the market',
    'beside the forge',
    'across the bridge',
    'in the orchard',
  ],
  verbT: ['mended', 'carried', 'watched', 'painted', 'counted', 'opened', 'cleaned', 'found', 'lit', 'built'],
  verbI: ['slept', 'waited', 'laughed', 'listened', 'walked home', 'sang softly', 'worked late', 'rested'],
  time: [
    'In the morning',
    'At dusk',
    'Before the rain',
    'After supper',
    'On market day',
    'When the snow came',
    'Every evening',
    'Long ago',
  ],
  weather: [
    'the wind was still',
    'rain fell on the roofs',
    'the sky was clear',
    'fog lay on the water',
    'the first frost came',
    'the sun was low',
  ],
};
const NUMS = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];

function sentence() {
  const r = rand();
  if (r < 0.2)
    return `${pick(W.time)}, ${pick(W.name)} ${pick(W.verbT)} the ${pick(W.adj)} ${pick(W.noun)} ${pick(W.place)}.`;
  if (r < 0.35) return `${pick(W.name)} ${pick(W.verbI)} while ${pick(W.weather)}.`;
  if (r < 0.5) {
    const n = Math.floor(rand() * 9);
    return `There were ${NUMS[n + 1]} ${pick(W.noun)}s ${pick(W.place)}, and ${pick(W.name)} ${pick(W.verbT)} ${NUMS[Math.floor(rand() * (n + 1))]} of them.`;
  }
  if (r < 0.62)
    return `"Is the ${pick(W.noun)} ${pick(W.adj)}?" asked ${pick(W.name)}. "It is ${pick(W.adj)}," said ${pick(W.name)}.`;
  if (r < 0.74) return `The ${pick(W.noun)} was ${pick(W.adj)}, and the ${pick(W.noun)} was ${pick(W.adj)}.`;
  if (r < 0.86) {
    const a = Math.floor(rand() * 5) + 1;
    const b = Math.floor(rand() * 5) + 1;
    return `${pick(W.name)} had ${NUMS[a - 1]} and found ${NUMS[b - 1]} more, so ${pick(W.name)} had ${a + b <= 10 ? NUMS[a + b - 1] : 'many'}.`;
  }
  return `${pick(W.time)} ${pick(W.weather)}, so ${pick(W.name)} ${pick(W.verbI)} ${pick(W.place)}.`;
}

const parts = [];
let bytes = 0;
while (bytes < TARGET_BYTES) {
  const n = 3 + Math.floor(rand() * 4);
  const para = Array.from({ length: n }, sentence).join(' ');
  parts.push(para);
  bytes += para.length + 2;
}
const text = `${parts.join('\n\n')}\n`;
writeFileSync(new URL('../data/train/corpus.txt', import.meta.url), text.slice(0, TARGET_BYTES));
console.log(`data/train/corpus.txt: ${Math.min(text.length, TARGET_BYTES)} bytes`);
