// AudioWorklet processor: microphone samples → 16 kHz mono 16-bit PCM frames of a fixed byte size,
// plus a level reading about 30 times a second for the meter.
//
// It runs on the audio rendering thread, so it only allocates when a frame is full. The context runs
// at the device rate (44.1 or 48 kHz typically); Firefox refuses to connect a microphone to a context
// forced to another rate, so the downsampling happens here: a windowed-sinc low-pass below the new
// Nyquist frequency, then linear interpolation at the output instants.
//
// Messages in:  {type: "start"} begin producing frames; {type: "flush"} emit the partial frame
//               (marked last) and stop producing frames.
// Messages out: {type: "frame", buffer, last} PCM16 little-endian; {type: "level", rms} 0..1.

const FILTER_TAPS = 63;
const LEVEL_INTERVAL_S = 1 / 30;

/** Low-pass FIR taps (Blackman-windowed sinc) with unity gain at DC; `cutoff` is a fraction of the rate. */
function lowPassTaps(cutoff, count) {
  const taps = new Float32Array(count);
  const middle = (count - 1) / 2;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const x = i - middle;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const phase = (2 * Math.PI * i) / (count - 1);
    const window = 0.42 - 0.5 * Math.cos(phase) + 0.08 * Math.cos(2 * phase);
    taps[i] = sinc * window;
    sum += taps[i];
  }
  for (let i = 0; i < count; i++) taps[i] /= sum;
  return taps;
}

/** Streaming sample-rate converter: low-pass filter, then linear interpolation between filtered samples. */
class Downsampler {
  constructor(inputRate, outputRate) {
    this.step = inputRate / outputRate;
    this.taps = lowPassTaps(Math.min(0.45, (0.45 * outputRate) / inputRate), FILTER_TAPS);
    this.extended = new Float32Array(FILTER_TAPS - 1 + 128);
    this.filtered = new Float32Array(128);
    this.reset();
  }

  reset() {
    this.extended.fill(0);
    this.previous = 0; // the last filtered sample of the previous block
    this.position = 0; // the next output instant, in input samples from the start of the block
  }

  /** Convert one block of input samples, calling `emit(sample)` for each output sample. */
  process(input, emit) {
    const length = input.length;
    const history = FILTER_TAPS - 1;
    if (this.extended.length < history + length) {
      const grown = new Float32Array(history + length);
      grown.set(this.extended.subarray(0, history));
      this.extended = grown;
      this.filtered = new Float32Array(length);
    }
    const extended = this.extended;
    const filtered = this.filtered;
    const taps = this.taps;
    extended.set(input, history);
    for (let j = 0; j < length; j++) {
      let acc = 0;
      for (let t = 0; t < FILTER_TAPS; t++) acc += taps[t] * extended[j + history - t];
      filtered[j] = acc;
    }
    extended.copyWithin(0, length, length + history);

    let position = this.position;
    while (position < length - 1) {
      const index = Math.floor(position);
      const fraction = position - index;
      const a = index < 0 ? this.previous : filtered[index];
      const b = filtered[index + 1];
      emit(a + (b - a) * fraction);
      position += this.step;
    }
    this.position = position - length;
    this.previous = filtered[length - 1];
  }
}

class PcmCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, frameBytes } = options.processorOptions;
    this.frameSamples = Math.max(1, Math.floor(frameBytes / 2));
    this.downsampler = sampleRate === targetRate ? null : new Downsampler(sampleRate, targetRate);
    this.sending = false;
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.mono = new Float32Array(128);
    this.levelSum = 0;
    this.levelCount = 0;
    this.levelEvery = Math.round(sampleRate * LEVEL_INTERVAL_S);
    this.push = (sample) => this.pushSample(sample);
    this.port.onmessage = (event) => this.command(event.data);
  }

  command(message) {
    if (message.type === "start") {
      this.sending = true;
      this.filled = 0;
      if (this.downsampler) this.downsampler.reset();
    } else if (message.type === "flush") {
      this.sending = false;
      this.postFrame(this.frame.slice(0, this.filled), true);
      this.filled = 0;
    }
  }

  pushSample(sample) {
    const clamped = Math.max(-1, Math.min(1, sample));
    this.frame[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.filled === this.frameSamples) {
      this.postFrame(this.frame, false);
      this.frame = new Int16Array(this.frameSamples);
      this.filled = 0;
    }
  }

  postFrame(samples, last) {
    this.port.postMessage({ type: "frame", buffer: samples.buffer, last }, [samples.buffer]);
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const mono = this.mixDown(channels);
    for (let i = 0; i < mono.length; i++) this.levelSum += mono[i] * mono[i];
    this.levelCount += mono.length;
    if (this.levelCount >= this.levelEvery) {
      this.port.postMessage({ type: "level", rms: Math.sqrt(this.levelSum / this.levelCount) });
      this.levelSum = 0;
      this.levelCount = 0;
    }
    if (this.sending) {
      if (this.downsampler) this.downsampler.process(mono, this.push);
      else for (let i = 0; i < mono.length; i++) this.pushSample(mono[i]);
    }
    return true;
  }

  mixDown(channels) {
    if (channels.length === 1) return channels[0];
    const length = channels[0].length;
    if (this.mono.length !== length) this.mono = new Float32Array(length);
    this.mono.fill(0);
    for (const channel of channels) for (let i = 0; i < length; i++) this.mono[i] += channel[i] / channels.length;
    return this.mono;
  }
}

registerProcessor("pcm-capture", PcmCaptureProcessor);
